/*
 * cli_run.c - `moat run`: the daemon's control thread. It loads the
 * configuration, starts the workers, and then only waits for signals
 * (SIGTERM/SIGINT stop gracefully, SIGHUP reloads) and for the periodic
 * certificate refresh.
 */
#include "acme_chal.h"
#include "acmed.h"
#include "admin.h"
#include "banfile.h"
#include "cli.h"
#include "conf.h"
#include "ddns.h"
#include "fsutil.h"
#include "gen.h"
#include "guard_ban.h"
#include "guard_limit.h"
#include "httpc.h"
#include "log.h"
#include "revoke.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define REFRESH_MS (60ull * 1000) /* certificates due, or a failed TLS rebuild, are checked this often */
#define REVOKE_POLL_MS 250          /* revocation lists: applied within a second */
#define BAN_EXPIRY_MS 1000          /* ended bans leave the table this often */
#define TRACKED_CLIENTS 100000      /* rate-limit buckets held at most */

struct control {
	uv_loop_t *loop;
	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t refresh;
	uv_timer_t revoke;
	uv_timer_t ban_expiry;
	uv_async_t stopped;
	uv_async_t bans;     /* a worker changed the ban table */
	uv_async_t certs;    /* the ACME thread installed a certificate */
	struct admin *admin;
	struct acmed *acmed;
	struct ddns *ddns;
	int lock_fd;         /* the data directory's lock */
	char *ban_file;
	unsigned saved_epoch; /* bans_epoch() last written to ban_file */
	const char *file;    /* NULL: the built-in demo */
	char *demo_data;
	struct gen *gen;     /* current generation (control's reference) */
	bool tls_pending;    /* a rebuild of the TLS contexts failed: retry it */
	unsigned tls_failures; /* rebuilds failed in a row */
	bool stopping;
};

static void usage(void)
{
	printf("usage: moat run [-c FILE]\n\n"
	       "Run the gateway in the foreground with the configuration in FILE.\n"
	       "Without -c, run the built-in demo: HTTPS on https://localhost:8443 with a\n"
	       "certificate from moat's internal CA (data in ./moat-data) serving a welcome page.\n\n"
	       "Signals: SIGTERM/SIGINT stop gracefully (in-flight requests finish),\n"
	       "SIGHUP re-reads FILE (a bad file is refused and the old one keeps serving).\n");
}

/*
 * Every connection is a file descriptor: take the whole allowance the
 * system grants, and by default let clients have three quarters of it (the
 * rest is for upstream connections and files), so a flood meets the cap
 * rather than accept() failing for everyone.
 */
static uint32_t auto_conns(void)
{
	struct rlimit rl;
	uint64_t n = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		n = rl.rlim_cur == RLIM_INFINITY ? 1048576 : (uint64_t)rl.rlim_cur;
	}
	n = n * 3 / 4;
	return (uint32_t)(n < 64 ? 64 : n > 10000000 ? 10000000 : n);
}

static struct conf *load(struct control *ctl)
{
	struct conf *c;
	char *errs = NULL;

	if (ctl->file == NULL)
		c = conf_demo(ctl->demo_data);
	else
		c = conf_load(ctl->file, &errs);
	if (c != NULL && c->conns_total == 0)
		c->conns_total = auto_conns();
	if (c == NULL && ctl->file != NULL) {
		fputs(errs ? errs : "invalid configuration\n", stderr);
		if (errs != NULL && errs[0] != '\0' && errs[strlen(errs) - 1] != '\n')
			fputc('\n', stderr);
		free(errs);
	}
	return c;
}

static int reload(struct control *ctl, const char *why)
{
	struct conf *c = load(ctl);
	struct gen *g;

	if (c == NULL) {
		log_error("%s refused: %s has errors (above); still serving the previous configuration",
			  why, ctl->file);
		return MOAT_ECONFIG;
	}
	/* Everything that can refuse the reload comes before the access log
	 * is switched: a refused reload must leave all of the old one in place. */
	if (strcmp(c->data, ctl->gen->conf->data) != 0) {
		/* the lock, the bans file and the admin socket live there */
		log_error("%s refused: data changed from %s to %s, which needs a restart; still "
			  "serving the previous configuration", why, ctl->gen->conf->data, c->data);
		conf_free(c);
		return MOAT_ECONFIG;
	}
	if (workers_check_reload(c) != 0) {
		conf_free(c);
		return MOAT_ECONFIG;
	}
	if (c->ban_table != ctl->gen->conf->ban_table)
		log_warn("limits.bans changed to %zu: the ban table keeps holding at most %zu until "
			 "moat restarts", c->ban_table, ctl->gen->conf->ban_table);
	g = gen_new(c);
	if (g == NULL) {
		log_error("%s refused: still serving the previous configuration", why);
		return MOAT_ECONFIG;
	}
	if (log_access_open(g->conf->access_log) != 0) {
		log_error("%s refused: cannot open the access log; still serving the previous configuration",
			  why);
		gen_unref(g);
		return MOAT_EIO;
	}
	if (workers_reload(g) != 0) {
		gen_unref(g);
		return MOAT_ECONFIG;
	}
	gen_unref(ctl->gen);
	ctl->gen = g;
	ctl->tls_pending = false;
	acmed_reconfigure(ctl->acmed, g);
	ddns_reconfigure(&ctl->ddns, &g->conf->ddns);
	log_info("%sed %s (%zu sites)", why, ctl->file ? ctl->file : "the built-in demo",
		 g->conf->nsites);
	return 0;
}

/* The first SIGTERM/SIGINT drains; a second one closes what is left now. */
static void on_stop_signal(uv_signal_t *s, int signum)
{
	struct control *ctl = s->data;
	const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";

	if (ctl->stopping) {
		log_info("%s again: closing the remaining connections now", name);
		workers_stop(true);
		return;
	}
	ctl->stopping = true;
	log_info("%s: stopping (in-flight requests may finish; send it again to stop at once)", name);
	workers_stop(false);
	uv_close((uv_handle_t *)&ctl->refresh, NULL);
	/* an order in flight stops where it stands (the next start resumes
	 * it); the thread is joined when the workers are done (on_stopped),
	 * so withdrawing a DNS record does not hold up the drain */
	acmed_signal_stop(ctl->acmed);
	/* The revocation poll goes on: a certificate revoked while requests
	 * drain must still stop working. The signals stay handled until the
	 * workers are gone (on_stopped): closing the last handle of a signal
	 * restores its default action, and SIGHUP's (a log rotation's reload,
	 * say) would kill the draining process. */
}

/* A worker's loop ended; when all have, the control loop may end too. */
static void on_stopped(uv_async_t *a)
{
	struct control *ctl = a->data;

	if (!workers_all_stopped())
		return;
	/* The ACME thread was told to stop at the signal; it must be gone
	 * before the handle it signals is, and is joined before the signal
	 * handles close (which puts back the default actions): a SIGHUP
	 * while it withdraws a DNS record must not kill the process. */
	acmed_stop(ctl->acmed);
	ctl->acmed = NULL;
	uv_close((uv_handle_t *)&ctl->sigterm, NULL);
	uv_close((uv_handle_t *)&ctl->sigint, NULL);
	uv_close((uv_handle_t *)&ctl->sighup, NULL);
	uv_close((uv_handle_t *)&ctl->revoke, NULL);
	uv_close((uv_handle_t *)&ctl->ban_expiry, NULL);
	uv_close((uv_handle_t *)&ctl->bans, NULL);
	uv_close((uv_handle_t *)&ctl->certs, NULL);
	uv_close((uv_handle_t *)&ctl->stopped, NULL);
	admin_stop(ctl->admin);
	ctl->admin = NULL;
	/* Closing the handles put back the default actions (terminate); a late
	 * signal must not turn a clean stop into a kill. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
}

static void on_hup(uv_signal_t *s, int signum)
{
	struct control *ctl = s->data;

	if (ctl->stopping) {
		log_info("SIGHUP while stopping: ignored");
		return;
	}
	reload(ctl, "reload");
}

/* Swap in TLS contexts rebuilt from the same configuration: renewed
 * internal certificates, or ACME certificates the ACME thread installed.
 * Connections keep the generation they started with. */
static void renew_tls(struct control *ctl, const char *what)
{
	struct gen *g = gen_renew(ctl->gen);

	if (g == NULL || workers_reload(g) != 0) {
		/* said once, and then once an hour while it keeps failing */
		if (ctl->tls_failures++ % 60 == 0)
			log_error("%s: the TLS contexts could not be rebuilt (above); the current "
				  "certificates keep serving, retrying every %llu s", what,
				  (unsigned long long)(REFRESH_MS / 1000));
		gen_unref(g);
		ctl->tls_pending = true;
		return;
	}
	gen_unref(ctl->gen);
	ctl->gen = g;
	ctl->tls_pending = false;
	ctl->tls_failures = 0;
	acmed_reconfigure(ctl->acmed, g);
	log_info("%s", what);
}

/* Internal certificates are renewed on the running configuration, never by
 * re-reading the file: only SIGHUP applies edits. */
static void on_refresh(uv_timer_t *t)
{
	struct control *ctl = t->data;

	if (ctl->tls_pending)
		renew_tls(ctl, "new certificates are being served");
	else if (tls_sites_need_renewal(ctl->gen->tls, (long long)time(NULL)))
		renew_tls(ctl, "renewed internal certificates");
}

/* From the ACME thread. */
static void certs_changed(void *arg)
{
	struct control *ctl = arg;

	uv_async_send(&ctl->certs);
}

static void on_certs(uv_async_t *a)
{
	struct control *ctl = a->data;

	if (!ctl->stopping)
		renew_tls(ctl, "new ACME certificates are being served");
}

/* A revoked client certificate must stop working within a second, on live
 * connections too. */
static void on_revoke_poll(uv_timer_t *t)
{
	if (revoke_refresh() > 0)
		workers_poke();
}

/* ---- bans: the file, the table, the workers --------------------------- */

/* Write the table to the file when it changed since the last write. A
 * failed write leaves saved_epoch behind, so the expiry timer tries again
 * within a second: a ban made then is not lost if moat dies before the next
 * change. Ended bans are not a change (guard_ban.h): they stay in the file
 * until the next write, and loading skips them. */
static int save_bans(struct control *ctl)
{
	unsigned epoch = bans_epoch();
	struct ban *b;
	size_t n;
	int rc;

	if (ctl->ban_file == NULL || epoch == ctl->saved_epoch)
		return 0;
	b = bans_list((int64_t)time(NULL), &n);
	rc = banfile_write(ctl->ban_file, b, n);
	free(b);
	if (rc == 0)
		ctl->saved_epoch = epoch;
	return rc;
}

/* From any thread: the ban table changed. */
static void bans_notify(void *arg)
{
	struct control *ctl = arg;

	uv_async_send(&ctl->bans);
}

/* On the control thread: put the change on disk, then let the workers
 * close the connections of newly banned clients. */
static void on_bans(uv_async_t *a)
{
	struct control *ctl = a->data;

	save_bans(ctl);
	workers_poke();
}

/* Every second: drop ended bans (nothing to tell the workers or the file),
 * and retry a write of the file that failed (nothing to do when the epoch
 * was saved). */
static void on_ban_expiry(uv_timer_t *t)
{
	struct control *ctl = t->data;

	bans_expire((int64_t)time(NULL));
	save_bans(ctl);
}

/*
 * The data directory belongs to one daemon: take its lock (a second moat on
 * the same data would place duplicate orders and fight over the bans), set
 * up the shared tables and load the bans that survived the last run.
 */
static int claim_data(struct control *ctl, const struct conf *c)
{
	struct ban *b = NULL;
	size_t n = 0;
	char *why = NULL;
	int rc, tries;

	if (fs_mkdir_private(c->data) != 0)
		return MOAT_EIO;
	/* `moat ban` holds the lock for a moment while it edits the file with
	 * no daemon running: wait that out, not another daemon */
	for (tries = 0; tries < 40; tries++) {
		ctl->lock_fd = banfile_lock(c->data);
		if (ctl->lock_fd != MOAT_EEXIST)
			break;
		usleep(50 * 1000);
	}
	if (ctl->lock_fd == MOAT_EEXIST) {
		log_error("another moat (pid %ld) is running with the data directory %s; stop it "
			  "first, or give this one its own data:", banfile_lock_holder(c->data), c->data);
		return MOAT_EEXIST;
	}
	if (ctl->lock_fd < 0)
		return MOAT_EIO;
	ctl->ban_file = banfile_path(c->data);
	rc = banfile_read(ctl->ban_file, (int64_t)time(NULL), &b, &n, &why);
	if (rc != 0) {
		log_error("%s; fix the file, or remove it to start with no bans",
			  why ? why : "cannot read the bans");
		free(why);
		return rc;
	}
	limits_init(TRACKED_CLIENTS);
	bans_init(c->ban_table, bans_notify, ctl);
	bans_load(b, n, (int64_t)time(NULL));
	ctl->saved_epoch = bans_epoch();
	if (n > 0)
		log_info("%zu bans from %s are in force", n, ctl->ban_file);
	free(b);
	return 0;
}

static void release_data(struct control *ctl)
{
	if (ctl->ban_file != NULL) {
		bans_shutdown();
		limits_shutdown();
	}
	free(ctl->ban_file);
	ctl->ban_file = NULL;
	if (ctl->lock_fd >= 0)
		close(ctl->lock_fd);
	ctl->lock_fd = -1;
}

/* ---- what the admin socket sees --------------------------------------- */

static const struct conf *admin_conf(void *arg)
{
	struct control *ctl = arg;

	return ctl->gen->conf;
}

static int admin_bans_changed(void *arg)
{
	struct control *ctl = arg;
	int rc = save_bans(ctl);

	workers_poke();
	return rc;
}

static size_t admin_worker_conns(void *arg, uint64_t *out, size_t max)
{
	return workers_conns(out, max);
}

static json_t *admin_more_status(void *arg)
{
	struct control *ctl = arg;

	return json_pack("{s:o,s:o}", "certificates", acmed_status(ctl->acmed, ctl->gen),
			 "ddns", ddns_status(ctl->ddns));
}

static void announce(const struct control *ctl)
{
	const struct conf *c = ctl->gen->conf;
	size_t i;

	fprintf(stderr, "moat: ready (pid %ld, %u workers, %zu sites)", (long)getpid(), c->workers,
		c->nsites);
	for (i = 0; i < c->nhttps; i++)
		fprintf(stderr, " https %s", c->https[i].text);
	for (i = 0; i < c->nhttp; i++)
		fprintf(stderr, " http %s", c->http[i].text);
	fputc('\n', stderr);
	if (ctl->file == NULL) {
		printf("\nmoat demo is running: https://localhost:8443/\n"
		       "Its certificate comes from moat's internal CA. Try:\n\n"
		       "  curl --cacert %s/internal-ca.pem https://localhost:8443/\n\n"
		       "Stop it with Ctrl-C. Next: write moat.yaml (see README.md) and run\n"
		       "  moat check -c moat.yaml && moat run -c moat.yaml\n\n",
		       c->data);
		fflush(stdout);
	}
}

int cli_run(int argc, char **argv)
{
	struct control ctl = {0};
	struct conf *c;
	char cwd[PATH_MAX];
	int rc;

	rc = cli_parse_config_opt("run", argc, argv, &ctl.file);
	if (rc == 1) {
		usage();
		return 0;
	}
	if (rc != 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (httpc_global_init() != 0)
		return 1;
	if (ctl.file == NULL) {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			log_error("cannot read the current directory: %s", strerror(errno));
			return 1;
		}
		ctl.demo_data = xasprintf("%s/moat-data", cwd);
	}
	c = load(&ctl);
	if (c == NULL) {
		fprintf(stderr, "moat: not started; fix the errors above (moat check -c %s)\n", ctl.file);
		free(ctl.demo_data);
		return 1;
	}
	ctl.lock_fd = -1;
	if (claim_data(&ctl, c) != 0 || log_access_open(c->access_log) != 0) {
		conf_free(c);
		release_data(&ctl);
		free(ctl.demo_data);
		return 1;
	}
	acmed_prepare(c);
	ctl.gen = gen_new(c);
	if (ctl.gen == NULL) {
		log_error("not started");
		release_data(&ctl);
		free(ctl.demo_data);
		return 1;
	}
	ctl.loop = uv_default_loop();
	ctl.stopped.data = &ctl;
	uv_async_init(ctl.loop, &ctl.stopped, on_stopped);
	ctl.bans.data = &ctl;
	uv_async_init(ctl.loop, &ctl.bans, on_bans);
	ctl.certs.data = &ctl;
	uv_async_init(ctl.loop, &ctl.certs, on_certs);
	if (workers_start(ctl.gen, &ctl.stopped) != 0) {
		uv_close((uv_handle_t *)&ctl.stopped, NULL);
		uv_close((uv_handle_t *)&ctl.bans, NULL);
		uv_close((uv_handle_t *)&ctl.certs, NULL);
		uv_run(ctl.loop, UV_RUN_DEFAULT);
		log_error("not started");
		gen_unref(ctl.gen);
		release_data(&ctl);
		free(ctl.demo_data);
		return 1;
	}
	ctl.sigterm.data = ctl.sigint.data = ctl.sighup.data = ctl.refresh.data = &ctl;
	ctl.revoke.data = ctl.ban_expiry.data = &ctl;
	uv_signal_init(ctl.loop, &ctl.sigterm);
	uv_signal_init(ctl.loop, &ctl.sigint);
	uv_signal_init(ctl.loop, &ctl.sighup);
	uv_timer_init(ctl.loop, &ctl.refresh);
	uv_signal_start(&ctl.sigterm, on_stop_signal, SIGTERM);
	uv_signal_start(&ctl.sigint, on_stop_signal, SIGINT);
	uv_signal_start(&ctl.sighup, on_hup, SIGHUP);
	uv_timer_start(&ctl.refresh, on_refresh, REFRESH_MS, REFRESH_MS);
	uv_timer_init(ctl.loop, &ctl.revoke);
	uv_timer_start(&ctl.revoke, on_revoke_poll, REVOKE_POLL_MS, REVOKE_POLL_MS);
	uv_timer_init(ctl.loop, &ctl.ban_expiry);
	uv_timer_start(&ctl.ban_expiry, on_ban_expiry, BAN_EXPIRY_MS, BAN_EXPIRY_MS);
	ctl.admin = admin_start(ctl.loop, ctl.gen->conf->data, &(struct admin_ops){
		.arg = &ctl, .conf = admin_conf, .bans_changed = admin_bans_changed,
		.worker_conns = admin_worker_conns, .more_status = admin_more_status });
	if (ctl.admin == NULL)
		log_warn("running without the admin socket: moat ban and moat status will not "
			 "reach this daemon");
	ctl.acmed = acmed_start(ctl.gen, certs_changed, &ctl);
	ctl.ddns = ddns_start(&ctl.gen->conf->ddns);
	announce(&ctl);
	uv_run(ctl.loop, UV_RUN_DEFAULT);
	acmed_stop(ctl.acmed);
	ddns_stop(ctl.ddns);
	acme_chal_clear();
	workers_join();
	save_bans(&ctl);
	uv_loop_close(ctl.loop);
	gen_unref(ctl.gen);
	log_access_close();
	release_data(&ctl);
	free(ctl.demo_data);
	log_info("stopped");
	return 0;
}

int cli_parse_config_opt(const char *cmd, int argc, char **argv, const char **config)
{
	int i;

	*config = NULL;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			return 1;
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "moat %s: %s needs a file name\n", cmd, a);
				return 2;
			}
			*config = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			*config = a + 9;
		} else {
			fprintf(stderr, "moat %s: unknown option \"%s\"; try \"moat %s --help\"\n", cmd, a,
				cmd);
			return 2;
		}
	}
	return 0;
}

void cli_usage(void)
{
	printf("moat %s - put self-hosted web apps on the internet, safely\n\n"
	       "usage: moat COMMAND [options]\n\n"
	       "commands:\n"
	       "  run [-c FILE]    run the gateway (without -c: the built-in demo)\n"
	       "  check -c FILE    validate a configuration and show what it exposes\n"
	       "  ca COMMAND       the client-certificate CA: init, issue, list, revoke, export\n"
	       "  ban COMMAND      banned client addresses: list, add, remove\n"
	       "  status           what a running moat is doing: bans, limited clients, connections\n"
	       "  version          print the version\n"
	       "  help             this text\n\n"
	       "Every command takes --help. Docs: README.md, docs/config.md.\n",
	       MOAT_VERSION);
}
