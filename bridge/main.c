/* vbridged: carries virtio devices between ECUs. Never forks; systemd or a container supervises it.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "bridge/config.h"
#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/node.h"
#include "bridge/sigbus.h"

static void on_stop_signal(int signo, unsigned ev, void *arg)
{
	log_info("signal %d: shutting down", signo);
	vb_loop_break(arg);
}

static void on_hup(int signo, unsigned ev, void *arg)
{
	log_info("SIGHUP: reloading");
	node_reload(arg);
}

static void notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	if (getenv("NOTIFY_SOCKET")) {
		sd_notify(0, state);
	}
#else
	(void)state;
#endif
}

static int make_runtime_dir(const char *dir)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		log_err("runtime directory %s", dir);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct vb_config cfg;
	static struct node node;
	struct vb_watch *sig[3];
	struct vb_loop *loop;
	char err[512];
	int rc;

	config_defaults(&cfg);
	rc = config_parse_args(&cfg, argc, argv, err, sizeof(err));
	if (rc == 1) {
		return 0;
	}
	if (rc < 0 || config_finish(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "vbridged: %s\n", err);
		return 2;
	}
	if (cfg.check_only) {
		printf("vbridged: configuration OK: node %s, %u listen, %u exports, %u imports\n",
		       cfg.node, cfg.nlisten, cfg.nexports, cfg.nimports);
		return 0;
	}
	log_init(cfg.log_stderr, cfg.verbose, "vbridged");
	/*
	 * Link buffers come and go with every large message; keep freed heap
	 * instead of returning it to the kernel each time (page faults and
	 * zeroing showed up as the top cost). Bounded by the link buffer limits.
	 */
	mallopt(M_MMAP_THRESHOLD, (int)(cfg.max_msg + (1u << 20)));
	mallopt(M_TRIM_THRESHOLD, 32 << 20);
	signal(SIGPIPE, SIG_IGN);
	if (sigbus_guard_install() < 0) {
		fatalx("cannot install the SIGBUS handler");
	}
	if (make_runtime_dir(cfg.runtime_dir) < 0) {
		return 1;
	}
	loop = vb_loop_new();
	if (!loop) {
		fatalx("cannot create the event loop");
	}
	if (node_init(&node, loop, &cfg) < 0) {
		log_errx("start-up failed");
		node_fini(&node);
		vb_loop_free(loop);
		return 1;
	}
	sig[0] = vb_signal_new(loop, SIGTERM, on_stop_signal, loop);
	sig[1] = vb_signal_new(loop, SIGINT, on_stop_signal, loop);
	sig[2] = vb_signal_new(loop, SIGHUP, on_hup, &node);
	log_info("vbridged %s: node %s ready (%u exports, %u imports, control %s)", VB_VERSION,
	         cfg.node, cfg.nexports, cfg.nimports, cfg.control);
	notify("READY=1");
	rc = vb_loop_run(loop);
	notify("STOPPING=1");
	for (unsigned i = 0; i < 3; i++) {
		vb_watch_free(sig[i]);
	}
	node_fini(&node);
	vb_loop_free(loop);
	log_info("stopped");
	return rc < 0 ? 1 : 0;
}
