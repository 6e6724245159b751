/* Public-API checks of libspice-server.so.1 that need no client: run
 * against Debian's library and ours by tests/c_api.rs, which compares what
 * both print.
 *
 * Written from spice.h's documented behaviour:
 * - spice_server_set_video_codecs takes "encoder:codec" entries separated
 *   by ';' and returns 0 if it installed at least one, non-zero otherwise;
 * - spice_server_init sets the server up on the host's SpiceCoreInterface
 *   (the server asks it for timers and watches);
 * - misuse (a second vdagent port, removing instances that were never
 *   added) is reported through GLib's g_log in the "Spice" domain.
 *
 * Output, one line per item:
 *   call <what> <return value>
 *   log <domain> <level> <message>        (each g_log line during the call)
 *   core timers <n> watches <n>           (created by spice_server_init)
 *
 * Usage: api_checks <port>
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice.h>

static const char *level_name(GLogLevelFlags level)
{
    switch (level & G_LOG_LEVEL_MASK) {
    case G_LOG_LEVEL_ERROR: return "error";
    case G_LOG_LEVEL_CRITICAL: return "critical";
    case G_LOG_LEVEL_WARNING: return "warning";
    case G_LOG_LEVEL_MESSAGE: return "message";
    case G_LOG_LEVEL_INFO: return "info";
    case G_LOG_LEVEL_DEBUG: return "debug";
    default: return "other";
    }
}

/* Lines logged since the last call was printed. */
static GString *pending_logs;

static void print_line(const char *domain, GLogLevelFlags level, const char *message)
{
    /* Debug output depends on G_MESSAGES_DEBUG and is not compared. */
    if ((level & G_LOG_LEVEL_MASK) == G_LOG_LEVEL_DEBUG || (level & G_LOG_LEVEL_MASK) == G_LOG_LEVEL_INFO) {
        return;
    }
    g_string_append_printf(pending_logs, "log %s %s ", domain ? domain : "-", level_name(level));
    for (const char *c = message ? message : ""; *c; c++) {
        g_string_append_c(pending_logs, *c == '\n' ? ' ' : *c);
    }
    g_string_append_c(pending_logs, '\n');
}

static void spice_domain_handler(const gchar *domain, GLogLevelFlags level, const gchar *message,
                                 gpointer data)
{
    (void)data;
    print_line(domain, level, message);
}

/* Anything logged in another domain, or through structured logging. */
static GLogWriterOutput writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                               gpointer data)
{
    (void)data;
    const char *domain = NULL, *message = NULL;
    for (gsize i = 0; i < n_fields; i++) {
        if (strcmp(fields[i].key, "GLIB_DOMAIN") == 0) {
            domain = fields[i].value;
        } else if (strcmp(fields[i].key, "MESSAGE") == 0) {
            message = fields[i].value;
        }
    }
    print_line(domain, level, message);
    return G_LOG_WRITER_HANDLED;
}

static void call(const char *what, int ret)
{
    printf("call %s %d\n%s", what, ret, pending_logs->str);
    g_string_truncate(pending_logs, 0);
    fflush(stdout);
}

/* A core interface that counts what the server creates and runs nothing. */
static unsigned timers_created, watches_created;
static SpiceTimer *const dummy_timer = (SpiceTimer *)(uintptr_t)0x7100;
static SpiceWatch *const dummy_watch = (SpiceWatch *)(uintptr_t)0x7200;

static SpiceTimer *timer_add(SpiceTimerFunc func, void *opaque)
{
    (void)func, (void)opaque;
    timers_created++;
    return dummy_timer;
}
static void timer_start(SpiceTimer *timer, uint32_t ms) { (void)timer, (void)ms; }
static void timer_cancel(SpiceTimer *timer) { (void)timer; }
static void timer_remove(SpiceTimer *timer) { (void)timer; }
static SpiceWatch *watch_add(int fd, int mask, SpiceWatchFunc func, void *opaque)
{
    (void)fd, (void)mask, (void)func, (void)opaque;
    watches_created++;
    return dummy_watch;
}
static void watch_update_mask(SpiceWatch *watch, int mask) { (void)watch, (void)mask; }
static void watch_remove(SpiceWatch *watch) { (void)watch; }
static void channel_event(int event, SpiceChannelEventInfo *info) { (void)event, (void)info; }

/* A char device that never has data. */
static void chr_state(SpiceCharDeviceInstance *sin, int connected) { (void)sin, (void)connected; }
static int chr_write(SpiceCharDeviceInstance *sin, const uint8_t *buf, int len)
{
    (void)sin, (void)buf;
    return len;
}
static int chr_read(SpiceCharDeviceInstance *sin, uint8_t *buf, int len)
{
    (void)sin, (void)buf, (void)len;
    return 0;
}

static SpiceCharDeviceInterface chr_sif = {
    .base = {
        .type = SPICE_INTERFACE_CHAR_DEVICE,
        .description = "api checks char device",
        .major_version = SPICE_INTERFACE_CHAR_DEVICE_MAJOR,
        .minor_version = SPICE_INTERFACE_CHAR_DEVICE_MINOR,
    },
    .state = chr_state,
    .write = chr_write,
    .read = chr_read,
};

static void tablet_set_logical_size(SpiceTabletInstance *t, int w, int h) { (void)t, (void)w, (void)h; }
static void tablet_position(SpiceTabletInstance *t, int x, int y, uint32_t b) { (void)t, (void)x, (void)y, (void)b; }
static void tablet_wheel(SpiceTabletInstance *t, int m, uint32_t b) { (void)t, (void)m, (void)b; }
static void tablet_buttons(SpiceTabletInstance *t, uint32_t b) { (void)t, (void)b; }

static SpiceTabletInterface tablet_sif = {
    .base = {
        .type = SPICE_INTERFACE_TABLET,
        .description = "api checks tablet",
        .major_version = SPICE_INTERFACE_TABLET_MAJOR,
        .minor_version = SPICE_INTERFACE_TABLET_MINOR,
    },
    .set_logical_size = tablet_set_logical_size,
    .position = tablet_position,
    .wheel = tablet_wheel,
    .buttons = tablet_buttons,
};

/* Valid lists, malformed ones, and mixes: each string's return value. */
static const char *const codec_lists[] = {
    "spice:mjpeg",
    "spice:mjpeg;gstreamer:h264",
    "spice:mjpeg;;;",
    ";;spice:mjpeg;;spice:mjpeg;;;",
    "gstreamer:mjpeg;gstreamer:h264;gstreamer:vp8;gstreamer:vp9",
    "auto",
    "spice:vp8",
    "garbage;spice:mjpeg",
    "spice:mjpeg;spice:unknown_codec",
    "",
    ";",
    ";;;;",
    ":",
    ";:;",
    "::::",
    "missingcolon",
    ":missing_encoder",
    "missing_value:;",
    "spice:",
    ":mjpeg",
    "unknown:mjpeg",
    "unknown_encoder:mjpeg",
    "spice:unknown_codec",
    "spice&:mjpeg",
    "spice:mjpeg&",
    "spice:mjpeg:vp8",
    "spice :mjpeg",
    "Spice:mjpeg",
    "spice:MJPEG",
    "AUTO",
};

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 5999;
    pending_logs = g_string_new("");
    g_log_set_writer_func(writer, NULL, NULL);
    g_log_set_handler("Spice", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION,
                      spice_domain_handler, NULL);

    SpiceServer *server = spice_server_new();
    if (!server) {
        printf("fatal spice_server_new\n");
        return 1;
    }

    for (size_t i = 0; i < G_N_ELEMENTS(codec_lists); i++) {
        char what[128];
        snprintf(what, sizeof what, "set_video_codecs[%zu]", i);
        call(what, spice_server_set_video_codecs(server, codec_lists[i]));
    }
    call("set_video_codecs[NULL]", spice_server_set_video_codecs(server, NULL));

    SpiceCoreInterface core;
    memset(&core, 0, sizeof core);
    core.base.major_version = SPICE_INTERFACE_CORE_MAJOR;
    core.base.minor_version = SPICE_INTERFACE_CORE_MINOR;
    core.timer_add = timer_add;
    core.timer_start = timer_start;
    core.timer_cancel = timer_cancel;
    core.timer_remove = timer_remove;
    core.watch_add = watch_add;
    core.watch_update_mask = watch_update_mask;
    core.watch_remove = watch_remove;
    core.channel_event = channel_event;
    call("set_port", spice_server_set_port(server, port));
    call("set_noauth", spice_server_set_noauth(server));
    call("init", spice_server_init(server, &core));
    printf("core timers %u watches %u\n", timers_created, watches_created);

    /* After init too: QEMU sets codecs from its command line, and later
     * through its monitor. */
    call("set_video_codecs[after-init-good]", spice_server_set_video_codecs(server, "spice:mjpeg"));
    call("set_video_codecs[after-init-bad]", spice_server_set_video_codecs(server, "spice:"));

    /* A second vdagent port. */
    SpiceCharDeviceInstance agent = {.base.sif = &chr_sif.base, .subtype = "vdagent"};
    SpiceCharDeviceInstance agent2 = {.base.sif = &chr_sif.base, .subtype = "vdagent"};
    call("add_vdagent", spice_server_add_interface(server, &agent.base));
    call("add_second_vdagent", spice_server_add_interface(server, &agent2.base));
    printf("second_vdagent_attached %d\n", agent2.st != NULL);

    /* Removing instances that were never added. */
    SpiceCharDeviceInstance never = {.base.sif = &chr_sif.base, .subtype = "vdagent"};
    call("remove_unadded_char_device", spice_server_remove_interface(&never.base));
    SpiceTabletInstance tablet = {.base.sif = &tablet_sif.base};
    call("remove_unadded_tablet", spice_server_remove_interface(&tablet.base));

    call("remove_vdagent", spice_server_remove_interface(&agent.base));

    spice_server_destroy(server);
    call("destroy", 0);
    printf("done\n");
    return 0;
}
