/*
 * applets/serve.c - `imgbk serve`: export the partition inside a backup
 * image, or a Clonezilla directory's disks and partitions, read-only over
 * NBD, by running nbdkit with imgbk's plugin (nbd/plugin.c). A thin
 * launcher: it finds nbdkit and the plugin, builds nbdkit's command line,
 * waits for nbdkit to be serving and prints how to attach the export.
 */
static const char serve_usage[] =
"Usage: imgbk serve [OPTIONS] IMAGE|DIR [-- NBDKIT-OPTIONS...]\n"
"\n"
"Export the partition inside IMAGE read-only over NBD (Network Block Device)\n"
"with nbdkit and imgbk's plugin (nbdkit-imgbk-plugin.so), so that another\n"
"host, a VM or a restore job reads it without copying the image first.\n"
"IMAGE is anything imgbk mounts: every format, plain, compressed (gzip,\n"
"bzip2, several-block xz, several-frame zstd, lz4) or split (NAME.aa);\n"
"its block index is loaded (IMAGE.ibkx) or built and saved first.\n"
"DIR is a Clonezilla image directory: every saved disk (the whole disk, as\n"
"Clonezilla restores it) and partition is an export named after it (sda,\n"
"sda1); the default export is the first disk. DIR/sda or DIR/sda2 (or\n"
"--disk, --part) serves that one only.\n"
"Reads of a bad checksum group fail with EIO (logged by nbdkit); writes are\n"
"refused. nbdkit listens on TCP port 10809 of every address and goes to the\n"
"background once the image is open; NBDKIT-OPTIONS after -- change that,\n"
"e.g. -- -p 10810, -- -i 127.0.0.1, -- -U /run/imgbk.sock, -- -f (stay in\n"
"the foreground), -- -P PIDFILE. Stop it with kill (its pid: -P PIDFILE).\n"
"The plugin answers the requests of one connection one at a time (faster on\n"
"an image in memory than nbdkit's worker threads; nbdkit runs with -t 1 too):\n"
"nbdkit 1.32 (Debian 12) aborts when a client hangs up with several requests\n"
"of a connection in flight on workers, as nbdcopy does after an EIO. Clients\n"
"that open several connections (nbdcopy, qemu-img) read in parallel.\n"
"\n"
"Options:\n"
"      --disk NAME         with DIR: serve the saved disk NAME (sda)\n"
"      --part NAME         with DIR: serve the partition NAME (sda2)\n"
"      --raw               IMAGE is a raw partition image (dd)\n"
"  -n, --no-verify         do not check data checksums on reads\n"
"  -q, --quiet             print no hints\n"
"  -h, --help              show this help\n"
"\n"
"On another Linux host (example commands; HOST is this machine):\n"
"  modprobe nbd; nbd-client HOST -N sda1 /dev/nbd0    (then mount -o ro /dev/nbd0 /mnt)\n"
"  nbd-client -d /dev/nbd0                            (detach)\n"
"  qemu-system-x86_64 -m 2G -drive file=nbd://HOST:10809/sda,format=raw,readonly=on,snapshot=on\n"
"  qemu-img convert -f raw -O qcow2 nbd://HOST:10809 disk.qcow2\n"
"\n"
"The plugin is looked for in $IMGBK_NBDKIT_PLUGIN, next to imgbk, in build/\n"
"next to imgbk, then in nbdkit's plugin directory (make install puts it\n"
"there). Plugin parameters, for running nbdkit by hand:\n"
"  nbdkit imgbk [file=]IMAGE [raw=true] [verify=false] [parallel=true]\n"
"  nbdkit imgbk dir=DIR [disk=sda | part=sda2] [verify=false] [parallel=true]\n"
"\n"
"Exit codes: 0 nbdkit is serving (or, with -- -f, ended normally), 1 nbdkit\n"
"could not start (its message says why: e.g. the image is missing or\n"
"damaged), 2 usage, 3 nbdkit is not installed or cannot be run.\n";

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "applet.h"
#include "czdir.h"

#define PLUGIN_FILE "nbdkit-imgbk-plugin.so"
#define NBD_DEFAULT_PORT "10809"
/* nbdkit options we add, the plugin and its parameters */
#define MAX_OWN_ARGS 12

struct serve_request {
	const char *image;        /* file= or dir= */
	int is_dir;
	const char *disk, *part;  /* with a directory */
	int raw, verify, quiet;
	char **nbdkit_opts;       /* after -- */
	int n_nbdkit_opts;
};

/* ---- finding the programs --------------------------------------------------- */

static int is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* nbdkit on $PATH, in out. @return 0, or -1 when it is not there. */
static int find_nbdkit(char *out, size_t outsz)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path && *path ? path : "/usr/bin:/bin");
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, outsz, "%s/nbdkit", *d ? d : ".");
		if (access(out, X_OK) == 0 && is_file(out))
			return 0;
	}
	return -1;
}

/* The plugin: $IMGBK_NBDKIT_PLUGIN, next to this binary, in build/ next to
 * it (a source tree), else the name "imgbk" for nbdkit's plugin directory. */
static void find_plugin(char *out, size_t outsz)
{
	const char *env = getenv("IMGBK_NBDKIT_PLUGIN");
	if (env && *env) {
		snprintf(out, outsz, "%s", env);
		return;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = 0;
		static const char *const where[] = { "", "/build" };
		for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
			snprintf(out, outsz, "%s%s/" PLUGIN_FILE, exe, where[i]);
			if (is_file(out))
				return;
		}
	}
	snprintf(out, outsz, "imgbk");
}

/* ---- the argument ---------------------------------------------------------- */

/* "DIR/sda" or "DIR/sda2" of a Clonezilla directory (no such file): serve
 * that disk or partition of DIR. dirbuf holds DIR. @return 0, or the exit code. */
static int resolve_dir_member(struct serve_request *rq, char *dirbuf, size_t dirsz)
{
	const char *slash = strrchr(rq->image, '/');
	struct stat st;
	if (!slash || slash == rq->image || !slash[1] || stat(rq->image, &st) == 0)
		return 0;
	snprintf(dirbuf, dirsz, "%.*s", (int)(slash - rq->image), rq->image);
	if (!img_czdir_probe(dirbuf))
		return 0;
	img_czdir *cz;
	img_err err;
	int rc = img_czdir_open(dirbuf, &cz, &err);
	if (rc != IMG_OK) {
		warnx_("%s", err.msg);
		return img_exit_code(rc);
	}
	int code = 0;
	const char *name = slash + 1;
	int disk = 0;
	for (size_t d = 0; d < img_czdir_disk_count(cz); d++)
		disk |= strcmp(img_czdir_disk(cz, d)->name, name) == 0;
	if (!disk && img_czdir_find(cz, name) < 0) {
		warnx_("serve: %s: no disk or partition '%s' in this Clonezilla image directory", dirbuf, name);
		code = IMG_EXIT_USAGE;
	}
	img_czdir_close(cz);
	if (code)
		return code;
	rq->image = dirbuf;
	rq->is_dir = 1;
	if (disk)
		rq->disk = name;
	else
		rq->part = name;
	return 0;
}

/* ---- nbdkit's command line ------------------------------------------------------ */

/* A user option that keeps nbdkit in the foreground (it then never returns
 * to us while serving, so the hints come first). */
static int stays_in_foreground(const struct serve_request *rq)
{
	for (int i = 0; i < rq->n_nbdkit_opts; i++) {
		const char *o = rq->nbdkit_opts[i];
		if (!strcmp(o, "-f") || !strcmp(o, "--foreground") || !strcmp(o, "-v") ||
		    !strcmp(o, "--verbose") || !strcmp(o, "--run") || !strcmp(o, "-s") ||
		    !strcmp(o, "--single"))
			return 1;
	}
	return 0;
}

/* The value of a user option (-p 10810, --port=10810), or NULL. */
static const char *user_option(const struct serve_request *rq, const char *shrt, const char *lng)
{
	size_t ll = strlen(lng);
	for (int i = 0; i < rq->n_nbdkit_opts; i++) {
		const char *o = rq->nbdkit_opts[i];
		if ((!strcmp(o, shrt) || !strcmp(o, lng)) && i + 1 < rq->n_nbdkit_opts)
			return rq->nbdkit_opts[i + 1];
		if (!strncmp(o, lng, ll) && o[ll] == '=')
			return o + ll + 1;
	}
	return NULL;
}

static char *param(const char *key, const char *value)
{
	size_t n = strlen(key) + strlen(value) + 2;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s=%s", key, value);
	return s;
}

/* argv for execv: nbdkit -r [--threads=1] [user options] PLUGIN key=value...
 * One thread per connection, as the plugin's own thread model asks
 * (serialize_requests, nbd/plugin.c) and as --threads=1 says again: nbdkit
 * 1.32 asserts (raw_send_socket: sock >= 0) and aborts when a client sends
 * NBD_CMD_DISC while other requests of that connection are still being
 * answered on worker threads, which nbdcopy does when a read fails with EIO.
 * The key=value strings made here are also put in owned[] (MAX_PARAMS, to
 * free). @return NULL on no memory. */
#define MAX_PARAMS 3
static char **nbdkit_argv(const struct serve_request *rq, char *nbdkit, char *plugin, char **owned)
{
	char **av = calloc((size_t)rq->n_nbdkit_opts + MAX_OWN_ARGS, sizeof *av);
	if (!av)
		return NULL;
	int n = 0, k = 0;
	av[n++] = nbdkit;
	av[n++] = "-r";
	if (!user_option(rq, "-t", "--threads"))
		av[n++] = "--threads=1";
	for (int i = 0; i < rq->n_nbdkit_opts; i++)
		av[n++] = rq->nbdkit_opts[i];
	av[n++] = plugin;
	av[n++] = owned[k++] = param(rq->is_dir ? "dir" : "file", rq->image);
	if (rq->disk)
		av[n++] = owned[k++] = param("disk", rq->disk);
	if (rq->part)
		av[n++] = owned[k++] = param("part", rq->part);
	if (rq->raw)
		av[n++] = "raw=true";
	if (!rq->verify)
		av[n++] = "verify=false";
	for (int i = 0; i < n; i++)
		if (!av[i]) {
			free(av);
			return NULL;
		}
	return av;
}

/* ---- hints ------------------------------------------------------------------------ */

/* The export name a client asks for: the disk or partition, or the image's name. */
static const char *export_name(const struct serve_request *rq)
{
	if (rq->disk || rq->part)
		return rq->disk ? rq->disk : rq->part;
	if (rq->is_dir)
		return "sda";
	const char *slash = strrchr(rq->image, '/');
	return slash ? slash + 1 : rq->image;
}

static void print_hints(const struct serve_request *rq)
{
	const char *sock = user_option(rq, "-U", "--unix");
	const char *port = user_option(rq, "-p", "--port");
	const char *name = export_name(rq);
	printf("Serving %s read-only over NBD (nbdkit).\n", rq->image);
	if (sock) {
		printf("On this host: nbdinfo 'nbd+unix:///?socket=%s'\n"
		       "   qemu-img convert -f raw 'nbd+unix:///?socket=%s' out.raw\n", sock, sock);
	} else {
		if (!port)
			port = NBD_DEFAULT_PORT;
		printf("On another Linux host (HOST is this machine%s):\n"
		       "   modprobe nbd; nbd-client HOST %s -N %s /dev/nbd0; mount -o ro /dev/nbd0 /mnt\n"
		       "   qemu-system-x86_64 -m 2G -drive file=nbd://HOST:%s/%s,format=raw,readonly=on,snapshot=on\n",
		       rq->is_dir ? "; nbdinfo -L nbd://HOST lists the exports" : "", port, name, port, name);
	}
	fflush(stdout);
}

/* ---- running nbdkit ----------------------------------------------------------------- */

static int run_nbdkit(const struct serve_request *rq, char **av)
{
	int fg = stays_in_foreground(rq);
	if (fg && !rq->quiet)
		print_hints(rq);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		warnx_("serve: fork: %s", strerror(errno));
		return IMG_EXIT_SYSTEM;
	}
	if (pid == 0) {
		execv(av[0], av);
		fprintf(stderr, "%s: serve: %s: %s\n", prog_name, av[0], strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			warnx_("serve: waitpid: %s", strerror(errno));
			return IMG_EXIT_SYSTEM;
		}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		return IMG_EXIT_SYSTEM;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return fg && WIFSIGNALED(st) ? IMG_EXIT_OK : IMG_EXIT_DAMAGED;
	if (!fg && !rq->quiet)
		print_hints(rq);
	return IMG_EXIT_OK;
}

static int serve(struct serve_request *rq)
{
	char nbdkit[PATH_MAX + 8], plugin[PATH_MAX + 64], dirbuf[PATH_MAX];
	if (find_nbdkit(nbdkit, sizeof nbdkit) != 0) {
		warnx_("serve: nbdkit is not installed (Debian: apt-get install nbdkit); "
		       "imgbk serve runs it with imgbk's plugin");
		return IMG_EXIT_SYSTEM;
	}
	if (!rq->is_dir) {
		int code = resolve_dir_member(rq, dirbuf, sizeof dirbuf);
		if (code)
			return code;
	}
	if ((rq->disk || rq->part) && !rq->is_dir) {
		warnx_("serve: --disk and --part need a Clonezilla image directory");
		return IMG_EXIT_USAGE;
	}
	find_plugin(plugin, sizeof plugin);
	char *owned[MAX_PARAMS] = { NULL };
	char **av = nbdkit_argv(rq, nbdkit, plugin, owned);
	int code = av ? run_nbdkit(rq, av) : IMG_EXIT_SYSTEM;
	if (!av)
		warnx_("serve: out of memory");
	for (int i = 0; i < MAX_PARAMS; i++)
		free(owned[i]);
	free(av);
	return code;
}

/* ---- the applet ----------------------------------------------------------------------- */

enum { OPT_DISK = OPT_DRY_RUN + 1, OPT_PART };

static int serve_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "part", required_argument, NULL, OPT_PART },
		{ "raw", no_argument, NULL, OPT_RAW },
		{ "no-verify", no_argument, NULL, 'n' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct serve_request rq = { .verify = 1 };
	int c;
	/* "+": stop at the first non-option, so nbdkit's options after -- stay ours to pass */
	while ((c = getopt_long(argc, argv, "+nqh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_DISK: rq.disk = optarg; break;
		case OPT_PART: rq.part = optarg; break;
		case OPT_RAW: rq.raw = 1; break;
		case 'n': rq.verify = 0; break;
		case 'q': rq.quiet = 1; break;
		case 'h': return usage_exit(&applet_serve, 1);
		default: return usage_exit(&applet_serve, 0);
		}
	}
	if (optind >= argc) {
		warnx_("serve: expected IMAGE or DIR");
		return usage_exit(&applet_serve, 0);
	}
	rq.image = argv[optind++];
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	else if (optind < argc) {
		warnx_("serve: nbdkit's options go after --: imgbk serve IMAGE -- %s", argv[optind]);
		return usage_exit(&applet_serve, 0);
	}
	rq.nbdkit_opts = argv + optind;
	rq.n_nbdkit_opts = argc - optind;
	rq.is_dir = cz_arg_is_dir(rq.image);
	if (rq.disk && rq.part) {
		warnx_("serve: give --disk or --part, not both");
		return IMG_EXIT_USAGE;
	}
	if (rq.raw && rq.is_dir) {
		warnx_("serve: --raw applies to an image file, not a directory");
		return IMG_EXIT_USAGE;
	}
	return serve(&rq);
}

const struct applet applet_serve = {
	"serve", serve_main, "export an image read-only over NBD (runs nbdkit)", serve_usage,
};
