/*
 * SPDX-License-Identifier: MIT OR Apache-2.0
 *
 * host.c: a small SPICE host that drives libspice-server.so.1 through its
 * public C ABI (spice.h) the way QEMU's simple display does, so the same
 * program can run against Debian's C library and against ours.
 *
 * - A poll()-based main loop implements SpiceCoreInterface: one-shot timers
 *   (milliseconds, monotonic clock) and level-triggered fd watches; the read
 *   and write sides of a watch are dispatched separately, as QEMU does.
 * - Keyboard, mouse, tablet, playback, record and one QXL instance (simple
 *   display: DRAW_COPY column strips at most 32 pixels wide, cursor SET/MOVE).
 * - On request, a "vdagent" char device that behaves like QEMU's spicevmc
 *   chardev behind virtio-serial (see "Guest agent port" below).
 * - Events are printed on stdout, one JSON object per line; commands are read
 *   from stdin, one per line (see `command()` below). Every command ends with
 *   {"event":"ok","cmd":NAME} (or "error").
 *
 * Usage: host --port N [--password P] [--width W] [--height H] [--name NAME]
 *             [--tablet 0|1] [--picture 0|1] [--unix-listen PATH] [--accept PATH]
 *             [--listen-fd PATH]
 *
 * --unix-listen PATH: the library listens on a Unix socket at PATH
 *   (spice_server_set_addr with SPICE_ADDR_FLAG_UNIX_ONLY, as QEMU's unix=on).
 * --listen-fd PATH: the host makes a Unix socket listen at PATH and hands it
 *   to spice_server_set_listen_socket_fd instead of setting a port (the
 *   descriptor stays the host's: it checks it is still open at the end).
 * --accept PATH: the host listens on a Unix socket at PATH itself and hands
 *   each connection to spice_server_add_client (as QEMU's add_client).
 *
 * Written for the spice-rs test suite; no code is taken from QEMU.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <spice.h>
#include <spice/vd_agent.h>

#include "scene.h"

#define STRIP 32              /* QEMU's simple display: column blocks of 32 pixels */
#define REFRESH_MS 30         /* QEMU's display refresh period */
#define AUDIO_TICK_MS 10      /* 480 frames at 48 kHz */
#define MEMSLOT_GROUP_HOST 0
#define UPDATE_MAGIC 0x55504454u /* "UPDT" */
#define CURSOR_MAGIC 0x43555253u /* "CURS" */

/* ------------------------------------------------------------------------ */
/* Output                                                                   */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t main_thread;

void out(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&out_lock);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

/* Writes `s` as a JSON string body (without quotes) into `buf`. */
static void json_escape(char *buf, size_t size, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(buf + n, size - n, "\\u%04x", c);
        } else {
            buf[n++] = (char)c;
        }
    }
    buf[n] = 0;
}

/* CPU time of the calling thread, in nanoseconds. */
static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time the library spent on the main thread: inside its watch and timer
 * callbacks, where QEMU would run it with the big lock held. */
static int64_t lib_main_ns;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Core interface calls must come from the thread that runs the loop. */
static void check_thread(const char *fn)
{
    if (!pthread_equal(pthread_self(), main_thread)) {
        out("{\"event\":\"core-off-thread\",\"fn\":\"%s\"}", fn);
    }
}

/* ------------------------------------------------------------------------ */
/* SpiceCoreInterface                                                       */

struct SpiceTimer {
    SpiceTimerFunc func;
    void *opaque;
    int64_t deadline; /* -1: not armed */
    int removed;
    int host; /* one of this program's own timers, not the library's */
    struct SpiceTimer *next;
};

struct SpiceWatch {
    int fd;
    int mask;
    SpiceWatchFunc func;
    void *opaque;
    int removed;
    struct SpiceWatch *next;
};

/* The lists are only changed on the main thread in a correct server; the lock
 * and the wake pipe keep the loop sane if a library calls from elsewhere
 * (which check_thread reports). Removed entries are freed between iterations,
 * never while a snapshot may still point at them. */
static pthread_mutex_t core_lock = PTHREAD_MUTEX_INITIALIZER;
static struct SpiceTimer *timers;
static struct SpiceWatch *watches;
static int wake_pipe[2] = {-1, -1};
static int n_timers_live, n_watches_live;

static void wake_loop(void)
{
    if (!pthread_equal(pthread_self(), main_thread) && wake_pipe[1] >= 0) {
        char c = 1;
        ssize_t r = write(wake_pipe[1], &c, 1);
        (void)r;
    }
}

static SpiceTimer *core_timer_add(SpiceTimerFunc func, void *opaque)
{
    check_thread("timer_add");
    SpiceTimer *t = calloc(1, sizeof(*t));
    t->func = func;
    t->opaque = opaque;
    t->deadline = -1;
    pthread_mutex_lock(&core_lock);
    t->next = timers;
    timers = t;
    n_timers_live++;
    pthread_mutex_unlock(&core_lock);
    return t;
}

static void core_timer_start(SpiceTimer *t, uint32_t ms)
{
    check_thread("timer_start");
    pthread_mutex_lock(&core_lock);
    t->deadline = now_ms() + ms;
    pthread_mutex_unlock(&core_lock);
    wake_loop();
}

static void core_timer_cancel(SpiceTimer *t)
{
    check_thread("timer_cancel");
    pthread_mutex_lock(&core_lock);
    t->deadline = -1;
    pthread_mutex_unlock(&core_lock);
}

static void core_timer_remove(SpiceTimer *t)
{
    check_thread("timer_remove");
    pthread_mutex_lock(&core_lock);
    if (t->removed) {
        out("{\"event\":\"core-error\",\"what\":\"timer removed twice\"}");
    }
    t->removed = 1;
    t->deadline = -1;
    n_timers_live--;
    pthread_mutex_unlock(&core_lock);
}

static SpiceWatch *core_watch_add(int fd, int mask, SpiceWatchFunc func, void *opaque)
{
    check_thread("watch_add");
    SpiceWatch *w = calloc(1, sizeof(*w));
    w->fd = fd;
    w->mask = mask;
    w->func = func;
    w->opaque = opaque;
    pthread_mutex_lock(&core_lock);
    w->next = watches;
    watches = w;
    n_watches_live++;
    pthread_mutex_unlock(&core_lock);
    wake_loop();
    return w;
}

static void core_watch_update_mask(SpiceWatch *w, int mask)
{
    check_thread("watch_update_mask");
    pthread_mutex_lock(&core_lock);
    w->mask = mask;
    pthread_mutex_unlock(&core_lock);
    wake_loop();
}

static void core_watch_remove(SpiceWatch *w)
{
    check_thread("watch_remove");
    pthread_mutex_lock(&core_lock);
    if (w->removed) {
        out("{\"event\":\"core-error\",\"what\":\"watch removed twice\"}");
    }
    w->removed = 1;
    w->mask = 0;
    n_watches_live--;
    pthread_mutex_unlock(&core_lock);
}

/* Channel event infos the host keeps, as QEMU's query-spice does, from
 * INITIALIZED until DISCONNECTED. */
#define MAX_INFOS 64
static SpiceChannelEventInfo *infos[MAX_INFOS];

static void peer_of(const SpiceChannelEventInfo *info, char *buf, size_t size, int *port)
{
    const struct sockaddr_storage *ss = &info->paddr_ext;
    *port = -1;
    snprintf(buf, size, "?");
    if (!(info->flags & SPICE_CHANNEL_EVENT_FLAG_ADDR_EXT)) {
        snprintf(buf, size, "no-addr-ext");
        return;
    }
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)size);
        *port = ntohs(sin->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, (socklen_t)size);
        *port = ntohs(sin6->sin6_port);
    }
}

/* --accept: the host's own Unix listener; each connection goes to
 * spice_server_add_client, with the return value reported. */
static SpiceWatch *accept_watch;
static int accept_fd = -1;
/* --listen-fd: the socket handed to spice_server_set_listen_socket_fd */
static int listen_fd = -1;
static SpiceServer *server; /* defined with the other state below */

static void on_host_accept(int fd, int event, void *opaque)
{
    (void)event;
    (void)opaque;
    for (;;) {
        int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0) {
            return;
        }
        int rc = spice_server_add_client(server, client, 0);
        out("{\"event\":\"add-client\",\"rc\":%d}", rc);
    }
}

static int unix_listener(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (fd < 0 || strlen(path) >= sizeof(sun.sun_path)) {
        return -1;
    }
    strcpy(sun.sun_path, path);
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 16) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void core_channel_event(int event, SpiceChannelEventInfo *info)
{
    check_thread("channel_event");
    char peer[64];
    int port;
    peer_of(info, peer, sizeof(peer), &port);
    out("{\"event\":\"channel\",\"ev\":%d,\"type\":%d,\"id\":%d,\"flags\":%d,\"peer\":\"%s\"}",
        event, info->type, info->id, info->flags, peer);
    if (event == SPICE_CHANNEL_EVENT_INITIALIZED) {
        for (int i = 0; i < MAX_INFOS; i++) {
            if (!infos[i]) {
                infos[i] = info;
                break;
            }
        }
    } else if (event == SPICE_CHANNEL_EVENT_DISCONNECTED) {
        for (int i = 0; i < MAX_INFOS; i++) {
            if (infos[i] == info) {
                infos[i] = NULL;
            }
        }
    }
}

static SpiceCoreInterface core = {
    .base = {
        .type = SPICE_INTERFACE_CORE,
        .description = "c_host poll loop",
        .major_version = SPICE_INTERFACE_CORE_MAJOR,
        .minor_version = SPICE_INTERFACE_CORE_MINOR,
    },
    .timer_add = core_timer_add,
    .timer_start = core_timer_start,
    .timer_cancel = core_timer_cancel,
    .timer_remove = core_timer_remove,
    .watch_add = core_watch_add,
    .watch_update_mask = core_watch_update_mask,
    .watch_remove = core_watch_remove,
    .channel_event = core_channel_event,
};

/* ------------------------------------------------------------------------ */
/* The host's own devices                                                   */

static SpiceServer *server;
static int quitting;

/* Keyboard ---------------------------------------------------------------- */

static int guest_leds;

static void kbd_push_scan_freg(SpiceKbdInstance *sin, uint8_t frag)
{
    (void)sin;
    out("{\"event\":\"scancode\",\"byte\":%u}", frag);
}

static uint8_t kbd_get_leds(SpiceKbdInstance *sin)
{
    (void)sin;
    out("{\"event\":\"get-leds\",\"leds\":%d}", guest_leds);
    return (uint8_t)guest_leds;
}

static const SpiceKbdInterface kbd_interface = {
    .base = {
        .type = SPICE_INTERFACE_KEYBOARD,
        .description = "c_host keyboard",
        .major_version = SPICE_INTERFACE_KEYBOARD_MAJOR,
        .minor_version = SPICE_INTERFACE_KEYBOARD_MINOR,
    },
    .push_scan_freg = kbd_push_scan_freg,
    .get_leds = kbd_get_leds,
};
static SpiceKbdInstance kbd = {.base = {.sif = &kbd_interface.base}};

/* Mouse and tablet -------------------------------------------------------- */
/* Button masks arrive in QEMU's order: left=1, right=2, middle=4. `qemu-buttons`
 * lines show the state QEMU's spice-input.c would derive (wheel as 0x10/0x20),
 * printed only when it changes, as QEMU only forwards changes. */

static uint32_t qemu_last_buttons;

static void qemu_buttons(int wheel, uint32_t state)
{
    if (wheel < 0) {
        state |= 0x10;
    } else if (wheel > 0) {
        state |= 0x20;
    }
    if (state != qemu_last_buttons) {
        out("{\"event\":\"qemu-buttons\",\"state\":%u}", state);
        qemu_last_buttons = state;
    }
}

static void mouse_motion(SpiceMouseInstance *sin, int dx, int dy, int dz, uint32_t buttons)
{
    (void)sin;
    out("{\"event\":\"mouse-motion\",\"dx\":%d,\"dy\":%d,\"dz\":%d,\"buttons\":%u}", dx, dy, dz,
        buttons);
    qemu_buttons(dz, buttons);
}

static void mouse_buttons(SpiceMouseInstance *sin, uint32_t buttons)
{
    (void)sin;
    out("{\"event\":\"mouse-buttons\",\"buttons\":%u}", buttons);
    qemu_buttons(0, buttons);
}

static const SpiceMouseInterface mouse_interface = {
    .base = {
        .type = SPICE_INTERFACE_MOUSE,
        .description = "c_host mouse",
        .major_version = SPICE_INTERFACE_MOUSE_MAJOR,
        .minor_version = SPICE_INTERFACE_MOUSE_MINOR,
    },
    .motion = mouse_motion,
    .buttons = mouse_buttons,
};
static SpiceMouseInstance mouse = {.base = {.sif = &mouse_interface.base}};

static void tablet_set_logical_size(SpiceTabletInstance *sin, int width, int height)
{
    (void)sin;
    out("{\"event\":\"tablet-size\",\"width\":%d,\"height\":%d}", width, height);
}

static void tablet_position(SpiceTabletInstance *sin, int x, int y, uint32_t buttons)
{
    (void)sin;
    out("{\"event\":\"tablet-position\",\"x\":%d,\"y\":%d,\"buttons\":%u}", x, y, buttons);
    qemu_buttons(0, buttons);
}

static void tablet_wheel(SpiceTabletInstance *sin, int wheel, uint32_t buttons)
{
    (void)sin;
    out("{\"event\":\"tablet-wheel\",\"wheel\":%d,\"buttons\":%u}", wheel, buttons);
    qemu_buttons(wheel, buttons);
}

static void tablet_buttons(SpiceTabletInstance *sin, uint32_t buttons)
{
    (void)sin;
    out("{\"event\":\"tablet-buttons\",\"buttons\":%u}", buttons);
    qemu_buttons(0, buttons);
}

static const SpiceTabletInterface tablet_interface = {
    .base = {
        .type = SPICE_INTERFACE_TABLET,
        .description = "c_host tablet",
        .major_version = SPICE_INTERFACE_TABLET_MAJOR,
        .minor_version = SPICE_INTERFACE_TABLET_MINOR,
    },
    .set_logical_size = tablet_set_logical_size,
    .position = tablet_position,
    .wheel = tablet_wheel,
    .buttons = tablet_buttons,
};
static SpiceTabletInstance tablet = {.base = {.sif = &tablet_interface.base}};
static int tablet_added;

/* Audio ------------------------------------------------------------------- */

static const SpicePlaybackInterface playback_interface = {
    .base = {
        .type = SPICE_INTERFACE_PLAYBACK,
        .description = "c_host playback",
        .major_version = SPICE_INTERFACE_PLAYBACK_MAJOR,
        .minor_version = SPICE_INTERFACE_PLAYBACK_MINOR,
    },
};
static SpicePlaybackInstance playback = {.base = {.sif = &playback_interface.base}};

static const SpiceRecordInterface record_interface = {
    .base = {
        .type = SPICE_INTERFACE_RECORD,
        .description = "c_host record",
        .major_version = SPICE_INTERFACE_RECORD_MAJOR,
        .minor_version = SPICE_INTERFACE_RECORD_MINOR,
    },
};
static SpiceRecordInstance record = {.base = {.sif = &record_interface.base}};

/* The PCM pattern: a xorshift32 sequence; each stereo frame is one value
 * (left in the low 16 bits), as the C API packs frames. */
static uint32_t pcm_state;

static void pcm_seed(uint32_t seed)
{
    pcm_state = (seed * 2654435761u) | 1;
}

static uint32_t pcm_next(void)
{
    pcm_state ^= pcm_state << 13;
    pcm_state ^= pcm_state >> 17;
    pcm_state ^= pcm_state << 5;
    return pcm_state;
}

static SpiceTimer *playback_timer;
static uint32_t playback_total, playback_done, playback_packets, playback_waits;
static int playback_stopping;

static void playback_tick(void *opaque)
{
    (void)opaque;
    if (playback_stopping) {
        /* One more tick after the last packet: let it leave before STOP. */
        spice_server_playback_stop(&playback);
        playback_stopping = 0;
        out("{\"event\":\"playback-done\",\"frames\":%u,\"packets\":%u,\"waits\":%u}",
            playback_done, playback_packets, playback_waits);
        return;
    }
    uint32_t *samples = NULL;
    uint32_t n = 0;
    spice_server_playback_get_buffer(&playback, &samples, &n);
    if (!samples || n == 0) {
        /* No buffer (no client, or all lent): keep the pattern and retry. */
        playback_waits++;
    } else {
        for (uint32_t i = 0; i < n; i++) {
            samples[i] = playback_done + i < playback_total ? pcm_next() : 0;
        }
        spice_server_playback_put_samples(&playback, samples);
        playback_done += n < playback_total - playback_done ? n : playback_total - playback_done;
        playback_packets++;
    }
    if (playback_done >= playback_total) {
        playback_stopping = 1;
    }
    core_timer_start(playback_timer, AUDIO_TICK_MS);
}

static SpiceTimer *record_timer;
static uint8_t *record_buf;
static size_t record_len, record_cap;
static int recording;

static void record_tick(void *opaque)
{
    (void)opaque;
    uint32_t frames[480];
    if (!recording) {
        return; /* the C server asserts when asked for samples while stopped */
    }
    for (;;) {
        uint32_t n = spice_server_record_get_samples(&record, frames, 480);
        if (n == 0) {
            break;
        }
        if (n > 480) {
            out("{\"event\":\"record-error\",\"what\":\"more samples than asked\",\"n\":%u}", n);
            break;
        }
        if (record_len + n * 4 > record_cap) {
            record_cap = (record_len + n * 4) * 2;
            record_buf = realloc(record_buf, record_cap);
        }
        memcpy(record_buf + record_len, frames, n * 4);
        record_len += n * 4;
        out("{\"event\":\"record-samples\",\"n\":%u,\"total\":%zu}", n, record_len / 4);
    }
    if (recording) {
        core_timer_start(record_timer, AUDIO_TICK_MS);
    }
}

/* zlib's CRC-32, bit by bit. */
static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Display (QXL, simple display) -------------------------------------------- */

typedef struct Update {
    uint32_t magic;
    int released;
    struct Update *next;     /* queue */
    struct Update *all_next; /* every update ever made, freed at exit */
    QXLDrawable drawable;
    QXLImage image;
    QXLCommandExt ext;
    uint8_t *bitmap;
    size_t bitmap_size;
} Update;

typedef struct Cursor {
    uint32_t magic;
    int released;
    struct Cursor *next;
    struct Cursor *all_next;
    QXLCommandExt ext;
    QXLCursorCmd cmd;
    QXLCursor cursor; /* must stay last: the shape's pixels follow it */
} Cursor;

static pthread_mutex_t qxl_lock = PTHREAD_MUTEX_INITIALIZER;
static Update *draw_head, *draw_tail, *all_updates;
static Cursor *cursor_head, *cursor_tail, *all_cursors;
static unsigned draw_made, draw_sent, draw_released, draw_dropped;
static unsigned cursor_made, cursor_sent, cursor_released;
static unsigned double_releases, bad_releases;
static uint64_t image_unique = 1;

static int width = 640, height = 480;
static uint32_t *fb;     /* the host's picture (xRGB, top-down), like QEMU's console surface */
static uint32_t *mirror; /* what has been sent, like QEMU's mirror */
static uint8_t *primary_buf; /* handed to the server as surface memory: never touched by us */
static int dirty_top, dirty_left, dirty_bottom, dirty_right; /* empty when top == bottom */
static int notify;
static int primary_live;
static uint32_t picture_seed = 1;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static SpiceTimer *refresh_timer;

static uint32_t pixel_hash(uint32_t x, uint32_t y, uint32_t seed)
{
    uint32_t h = x * 0x9E3779B1u ^ (y + 0x7F4A7C15u) * 0x85EBCA77u ^ seed * 0xC2B2AE3Du;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    h *= 0x297A2D39u;
    h ^= h >> 15;
    return h & 0x00FFFFFFu;
}

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static void mark_dirty(int x, int y, int w, int h)
{
    if (w <= 0 || h <= 0) {
        return;
    }
    if (dirty_top == dirty_bottom || dirty_left == dirty_right) {
        dirty_left = x;
        dirty_top = y;
        dirty_right = x + w;
        dirty_bottom = y + h;
        notify++;
        return;
    }
    if (x < dirty_left) dirty_left = x;
    if (y < dirty_top) dirty_top = y;
    if (x + w > dirty_right) dirty_right = x + w;
    if (y + h > dirty_bottom) dirty_bottom = y + h;
}

static void paint(int x, int y, int w, int h, uint32_t seed)
{
    for (int yy = y; yy < y + h; yy++) {
        for (int xx = x; xx < x + w; xx++) {
            fb[yy * width + xx] = pixel_hash((uint32_t)xx, (uint32_t)yy, seed);
        }
    }
    mark_dirty(x, y, w, h);
}

/* One DRAW_COPY of a rectangle of the picture, taken from the mirror after
 * bringing it up to date, exactly as the simple display builds them. */
static void queue_one_update(int left, int top, int right, int bottom)
{
    int bw = right - left, bh = bottom - top;
    Update *u = calloc(1, sizeof(*u));
    u->magic = UPDATE_MAGIC;
    u->bitmap_size = (size_t)bw * bh * 4;
    u->bitmap = malloc(u->bitmap_size);
    for (int y = top; y < bottom; y++) {
        memcpy(&mirror[y * width + left], &fb[y * width + left], (size_t)bw * 4);
        memcpy(u->bitmap + (size_t)(y - top) * bw * 4, &mirror[y * width + left], (size_t)bw * 4);
    }

    QXLDrawable *d = &u->drawable;
    d->release_info.id = (uintptr_t)&u->ext;
    d->surface_id = 0;
    d->effect = QXL_EFFECT_OPAQUE;
    d->type = QXL_DRAW_COPY;
    d->bbox.left = left;
    d->bbox.top = top;
    d->bbox.right = right;
    d->bbox.bottom = bottom;
    d->clip.type = SPICE_CLIP_TYPE_NONE;
    d->surfaces_dest[0] = d->surfaces_dest[1] = d->surfaces_dest[2] = -1;
    d->mm_time = (uint32_t)now_ms();
    d->u.copy.rop_descriptor = SPICE_ROPD_OP_PUT;
    d->u.copy.src_bitmap = (uintptr_t)&u->image;
    d->u.copy.src_area.left = 0;
    d->u.copy.src_area.top = 0;
    d->u.copy.src_area.right = bw;
    d->u.copy.src_area.bottom = bh;

    QXLImage *img = &u->image;
    QXL_SET_IMAGE_ID(img, QXL_IMAGE_GROUP_DEVICE, image_unique++);
    img->descriptor.type = SPICE_IMAGE_TYPE_BITMAP;
    img->descriptor.flags = 0;
    img->descriptor.width = (uint32_t)bw;
    img->descriptor.height = (uint32_t)bh;
    img->bitmap.format = SPICE_BITMAP_FMT_32BIT;
    img->bitmap.flags = QXL_BITMAP_DIRECT | QXL_BITMAP_TOP_DOWN;
    img->bitmap.x = (uint32_t)bw;
    img->bitmap.y = (uint32_t)bh;
    img->bitmap.stride = (uint32_t)bw * 4;
    img->bitmap.palette = 0;
    img->bitmap.data = (uintptr_t)u->bitmap;

    u->ext.cmd.type = QXL_CMD_DRAW;
    u->ext.cmd.data = (uintptr_t)d;
    u->ext.group_id = MEMSLOT_GROUP_HOST;
    u->ext.flags = 0;

    pthread_mutex_lock(&qxl_lock);
    u->all_next = all_updates;
    all_updates = u;
    if (draw_tail) {
        draw_tail->next = u;
    } else {
        draw_head = u;
    }
    draw_tail = u;
    draw_made++;
    pthread_mutex_unlock(&qxl_lock);
}

/* The dirty bounding box, cut into column blocks of STRIP pixels; within a
 * block, each run of rows that differ from the mirror becomes one command. */
static void create_updates(void)
{
    if (dirty_top == dirty_bottom || dirty_left == dirty_right) {
        return;
    }
    int blocks = (width + STRIP - 1) / STRIP;
    int *run_top = malloc(sizeof(int) * (size_t)blocks);
    for (int b = 0; b < blocks; b++) {
        run_top[b] = -1;
    }
    for (int y = dirty_top; y < dirty_bottom; y++) {
        for (int x = dirty_left; x < dirty_right; x += STRIP) {
            int b = x / STRIP;
            int bw = dirty_right - x < STRIP ? dirty_right - x : STRIP;
            int same = memcmp(&fb[y * width + x], &mirror[y * width + x], (size_t)bw * 4) == 0;
            if (same && run_top[b] != -1) {
                queue_one_update(x, run_top[b], x + bw, y);
                run_top[b] = -1;
            } else if (!same && run_top[b] == -1) {
                run_top[b] = y;
            }
        }
    }
    for (int x = dirty_left; x < dirty_right; x += STRIP) {
        int b = x / STRIP;
        int bw = dirty_right - x < STRIP ? dirty_right - x : STRIP;
        if (run_top[b] != -1) {
            queue_one_update(x, run_top[b], x + bw, dirty_bottom);
        }
    }
    free(run_top);
    dirty_top = dirty_bottom = dirty_left = dirty_right = 0;
}

/* QEMU's display refresh: build updates when the queue is empty, then wake
 * the worker. Runs on the main loop every REFRESH_MS. */
static QXLInstance qxl;
/* Lost notifications: the host pushes commands without spice_qxl_wakeup. */
static int drop_wakeups;

static void refresh(void *opaque)
{
    (void)opaque;
    if (primary_live) {
        pthread_mutex_lock(&qxl_lock);
        int empty = draw_head == NULL;
        pthread_mutex_unlock(&qxl_lock);
        if (empty) {
            create_updates();
            notify++;
        }
        if (notify) {
            notify = 0;
            if (!drop_wakeups) {
                spice_qxl_wakeup(&qxl);
            }
        }
    }
    if (!quitting) {
        core_timer_start(refresh_timer, REFRESH_MS);
    }
}

static void poison(void *p, size_t n)
{
    memset(p, 0xA5, n);
}

/* QXL callbacks --------------------------------------------------------- */

/* What QEMU's qxl device knows: whether the VM runs (QEMU sets it before
 * spice_server_vm_start and clears it after vm_stop returns) and whether a
 * memslot was added. A ring, release or presence callback outside that
 * window is what QEMU reports as "spice-server bug: guest stopped". */
static int vm_running_flag;
static int memslot_added;
static unsigned stopped_callbacks;
/* Memslot, primary surface and vm_start from inside attached_worker, as
 * upstream spice's own test display host does. */
static int setup_in_attached;

/* The thread the library calls the ring callbacks from (its worker), whose
 * CPU clock the "cpu" command reads. */
static pthread_t worker_thread;
static int worker_thread_known;

static void check_running(const char *fn)
{
    if (!vm_running_flag || !memslot_added) {
        stopped_callbacks++;
        out("{\"event\":\"qxl-callback-while-stopped\",\"fn\":\"%s\",\"vm\":%d,\"memslot\":%d}",
            fn, vm_running_flag, memslot_added);
    }
}

static void add_host_memslot(void);
static void create_primary(void);
static void start_vm(void);

static void qxl_attached_worker(QXLInstance *qin)
{
    out("{\"event\":\"qxl-attached-worker\",\"id\":%d}", qin->id);
    if (setup_in_attached) {
        add_host_memslot();
        create_primary();
        start_vm();
    }
}

static void qxl_set_compression_level(QXLInstance *qin, int level)
{
    (void)qin;
    out("{\"event\":\"qxl-compression-level\",\"level\":%d}", level);
}

static void qxl_get_init_info(QXLInstance *qin, QXLDevInitInfo *info)
{
    (void)qin;
    info->memslot_gen_bits = 8;
    info->memslot_id_bits = 8;
    info->num_memslots = 8;
    info->num_memslots_groups = 2;
    info->internal_groupslot_id = 0;
    info->qxl_ram_size = 16 * 1024 * 1024;
    info->n_surfaces = 1024;
    out("{\"event\":\"qxl-init-info\"}");
}

static int qxl_get_command(QXLInstance *qin, QXLCommandExt *ext)
{
    (void)qin;
    check_running("get_command");
    pthread_mutex_lock(&qxl_lock);
    if (!worker_thread_known) {
        worker_thread = pthread_self();
        worker_thread_known = 1;
    }
    pthread_mutex_unlock(&qxl_lock);
    if (scene_get_command(ext)) {
        return 1;
    }
    int got = 0;
    pthread_mutex_lock(&qxl_lock);
    Update *u = draw_head;
    if (u) {
        draw_head = u->next;
        if (!draw_head) {
            draw_tail = NULL;
        }
        *ext = u->ext;
        draw_sent++;
        got = 1;
    }
    pthread_mutex_unlock(&qxl_lock);
    return got;
}

static int qxl_req_cmd_notification(QXLInstance *qin)
{
    (void)qin;
    check_running("req_cmd_notification");
    return 1;
}

static void qxl_release_resource(QXLInstance *qin, QXLReleaseInfoExt rext)
{
    (void)qin;
    check_running("release_resource");
    if (rext.group_id == SCENE_GROUP) {
        scene_release(rext);
        return;
    }
    QXLCommandExt *ext = (QXLCommandExt *)(uintptr_t)rext.info->id;
    pthread_mutex_lock(&qxl_lock);
    if (ext->cmd.type == QXL_CMD_DRAW) {
        Update *u = (Update *)((char *)ext - offsetof(Update, ext));
        if (u->magic != UPDATE_MAGIC) {
            bad_releases++;
        } else if (u->released) {
            double_releases++;
        } else {
            u->released = 1;
            draw_released++;
            /* QEMU frees it here: anything the server reads later is garbage. */
            poison(u->bitmap, u->bitmap_size);
            poison(&u->image, sizeof(u->image));
        }
    } else if (ext->cmd.type == QXL_CMD_CURSOR) {
        Cursor *c = (Cursor *)((char *)ext - offsetof(Cursor, ext));
        if (c->magic != CURSOR_MAGIC) {
            bad_releases++;
        } else if (c->released) {
            double_releases++;
        } else {
            c->released = 1;
            cursor_released++;
        }
    } else {
        bad_releases++;
    }
    pthread_mutex_unlock(&qxl_lock);
}

static int qxl_get_cursor_command(QXLInstance *qin, QXLCommandExt *ext)
{
    (void)qin;
    check_running("get_cursor_command");
    int got = 0;
    pthread_mutex_lock(&qxl_lock);
    Cursor *c = cursor_head;
    if (c) {
        cursor_head = c->next;
        if (!cursor_head) {
            cursor_tail = NULL;
        }
        *ext = c->ext;
        cursor_sent++;
        got = 1;
    }
    pthread_mutex_unlock(&qxl_lock);
    return got;
}

static int qxl_req_cursor_notification(QXLInstance *qin)
{
    (void)qin;
    check_running("req_cursor_notification");
    return 1;
}

/* The simple display aborts in these; we report them instead. */
static void qxl_notify_update(QXLInstance *qin, uint32_t update_id)
{
    (void)qin;
    out("{\"event\":\"qxl-unexpected\",\"fn\":\"notify_update\",\"arg\":%u}", update_id);
}

static int qxl_flush_resources(QXLInstance *qin)
{
    (void)qin;
    /* The scene's oom asks for it; anything else is unexpected. */
    if (scene_active()) {
        out("{\"event\":\"flush-resources\"}");
    } else {
        out("{\"event\":\"qxl-unexpected\",\"fn\":\"flush_resources\"}");
    }
    return 0;
}

static void qxl_async_complete(QXLInstance *qin, uint64_t cookie)
{
    (void)qin;
    scene_async_complete(cookie);
    out("{\"event\":\"qxl-async-complete\",\"cookie\":%" PRIu64 "}", cookie);
}

static void qxl_update_area_complete(QXLInstance *qin, uint32_t surface_id, QXLRect *rects,
                                     uint32_t n)
{
    (void)qin;
    (void)rects;
    if (scene_active()) {
        /* update_area_async completes with it (both libraries) */
        out("{\"event\":\"qxl-update-area-complete\",\"surface\":%u,\"n\":%u}", surface_id, n);
        return;
    }
    out("{\"event\":\"qxl-unexpected\",\"fn\":\"update_area_complete\",\"surface\":%u,\"n\":%u}",
        surface_id, n);
}

static void qxl_set_client_capabilities(QXLInstance *qin, uint8_t present, uint8_t *caps)
{
    (void)qin;
    check_running("set_client_capabilities");
    (void)caps;
    out("{\"event\":\"qxl-client-caps\",\"present\":%u}", present);
}

/* --monitors-config 0: a device that does not take clients' monitor
 * configurations (they then go to the guest agent). */
static int monitors_config_supported = 1;

static int qxl_client_monitors_config(QXLInstance *qin, VDAgentMonitorsConfig *mc)
{
    (void)qin;
    if (!monitors_config_supported) {
        return 0;
    }
    if (!mc) {
        return 1;
    }
    uint32_t w = 0, h = 0;
    if (mc->num_of_monitors > 0) {
        w = mc->monitors[0].width;
        h = mc->monitors[0].height;
    }
    out("{\"event\":\"qxl-monitors-config\",\"n\":%u,\"flags\":%u,\"width\":%u,\"height\":%u,"
        "\"main\":%d}",
        mc->num_of_monitors, mc->flags, w, h, pthread_equal(pthread_self(), main_thread));
    return 1;
}

static const QXLInterface qxl_interface = {
    .base = {
        .type = SPICE_INTERFACE_QXL,
        .description = "c_host simple display",
        .major_version = SPICE_INTERFACE_QXL_MAJOR,
        .minor_version = SPICE_INTERFACE_QXL_MINOR,
    },
    .attached_worker = qxl_attached_worker,
    .set_compression_level = qxl_set_compression_level,
    .set_mm_time = NULL, /* as in Debian's QEMU (SPICE_NEEDS_SET_MM_TIME=0) */
    .get_init_info = qxl_get_init_info,
    .get_command = qxl_get_command,
    .req_cmd_notification = qxl_req_cmd_notification,
    .release_resource = qxl_release_resource,
    .get_cursor_command = qxl_get_cursor_command,
    .req_cursor_notification = qxl_req_cursor_notification,
    .notify_update = qxl_notify_update,
    .flush_resources = qxl_flush_resources,
    .async_complete = qxl_async_complete,
    .update_area_complete = qxl_update_area_complete,
    .set_client_capabilities = qxl_set_client_capabilities,
    .client_monitors_config = qxl_client_monitors_config,
};
static QXLInstance qxl = {.base = {.sif = &qxl_interface.base}, .id = 0};

static void create_primary(void)
{
    size_t size = (size_t)width * height * 4;
    free(fb);
    free(mirror);
    free(primary_buf);
    fb = calloc(size, 1);
    mirror = calloc(size, 1);
    primary_buf = calloc(size, 1);

    QXLDevSurfaceCreate surface;
    memset(&surface, 0, sizeof(surface));
    surface.format = SPICE_SURFACE_FMT_32_xRGB;
    surface.width = (uint32_t)width;
    surface.height = (uint32_t)height;
    surface.stride = -width * 4;
    surface.mouse_mode = 1;
    surface.flags = 0;
    surface.type = 0;
    surface.mem = (uintptr_t)primary_buf;
    surface.group_id = MEMSLOT_GROUP_HOST;
    spice_qxl_create_primary_surface(&qxl, 0, &surface);
    primary_live = 1;
    out("{\"event\":\"primary-created\",\"width\":%d,\"height\":%d}", width, height);
}

/* The host group's one slot: addresses are host pointers, as QEMU's simple display. */
static void add_host_memslot(void)
{
    QXLDevMemSlot slot;
    memset(&slot, 0, sizeof(slot));
    slot.slot_group_id = MEMSLOT_GROUP_HOST;
    slot.slot_id = 0;
    slot.generation = 0;
    slot.virt_start = 0;
    slot.virt_end = ~(uintptr_t)0;
    slot.addr_delta = 0;
    spice_qxl_add_memslot(&qxl, &slot);
    memslot_added = 1;
}

static void start_vm(void)
{
    vm_running_flag = 1;
    spice_server_vm_start(server);
}

/* Drops updates that never reached the server, as QEMU does on a mode switch. */
static void drop_queued_updates(void)
{
    pthread_mutex_lock(&qxl_lock);
    for (Update *u = draw_head; u; u = u->next) {
        draw_dropped++;
    }
    draw_head = draw_tail = NULL;
    pthread_mutex_unlock(&qxl_lock);
}

static void destroy_primary(void)
{
    if (primary_live) {
        spice_qxl_destroy_primary_surface(&qxl, 0);
        primary_live = 0;
        out("{\"event\":\"primary-destroyed\"}");
    }
}

static void queue_cursor(Cursor *c)
{
    pthread_mutex_lock(&qxl_lock);
    c->all_next = all_cursors;
    all_cursors = c;
    if (cursor_tail) {
        cursor_tail->next = c;
    } else {
        cursor_head = c;
    }
    cursor_tail = c;
    cursor_made++;
    pthread_mutex_unlock(&qxl_lock);
}

static Cursor *new_cursor(size_t data_size)
{
    Cursor *c = calloc(1, sizeof(*c) + data_size);
    c->magic = CURSOR_MAGIC;
    c->cmd.release_info.id = (uintptr_t)&c->ext;
    c->ext.cmd.type = QXL_CMD_CURSOR;
    c->ext.cmd.data = (uintptr_t)&c->cmd;
    c->ext.group_id = MEMSLOT_GROUP_HOST;
    return c;
}

/* Cursor SET (ALPHA, w x h ARGB, single chunk) at (x, y), then MOVE to (mx, my). */
static void send_cursor(int w, int h, int hx, int hy, int x, int y, int mx, int my)
{
    size_t size = (size_t)w * h * 4;
    Cursor *set = new_cursor(size);
    set->cmd.type = QXL_CURSOR_SET;
    set->cmd.u.set.position.x = (int16_t)x;
    set->cmd.u.set.position.y = (int16_t)y;
    set->cmd.u.set.visible = 1;
    set->cmd.u.set.shape = (uintptr_t)&set->cursor;
    set->cursor.header.unique = image_unique++;
    set->cursor.header.type = SPICE_CURSOR_TYPE_ALPHA;
    set->cursor.header.width = (uint16_t)w;
    set->cursor.header.height = (uint16_t)h;
    set->cursor.header.hot_spot_x = (uint16_t)hx;
    set->cursor.header.hot_spot_y = (uint16_t)hy;
    set->cursor.data_size = (uint32_t)size;
    set->cursor.chunk.data_size = (uint32_t)size;
    set->cursor.chunk.prev_chunk = 0;
    set->cursor.chunk.next_chunk = 0;
    uint8_t *px = (uint8_t *)set + offsetof(Cursor, cursor) + offsetof(QXLCursor, chunk) +
                  offsetof(QXLDataChunk, data);
    for (int i = 0; i < w * h; i++) {
        uint32_t argb = 0xFF000000u | pixel_hash((uint32_t)i, 7, 7);
        memcpy(px + (size_t)i * 4, &argb, 4);
    }
    /* Clients show it as RGBA bytes (spice-gtk swaps B and R of each pixel). */
    uint8_t *rgba = malloc(size);
    for (size_t i = 0; i < size; i += 4) {
        rgba[i] = px[i + 2];
        rgba[i + 1] = px[i + 1];
        rgba[i + 2] = px[i];
        rgba[i + 3] = px[i + 3];
    }
    out("{\"event\":\"cursor-queued\",\"width\":%d,\"height\":%d,\"crc32\":%u,"
        "\"rgba_crc32\":%u}",
        w, h, crc32_of(px, size), crc32_of(rgba, size));
    free(rgba);
    queue_cursor(set);

    Cursor *move = new_cursor(0);
    move->cmd.type = QXL_CURSOR_MOVE;
    move->cmd.u.position.x = (int16_t)mx;
    move->cmd.u.position.y = (int16_t)my;
    queue_cursor(move);
    notify++;
}

static void print_counts(const char *event)
{
    pthread_mutex_lock(&qxl_lock);
    unsigned queued = 0;
    for (Update *u = draw_head; u; u = u->next) {
        queued++;
    }
    out("{\"event\":\"%s\",\"draw_made\":%u,\"draw_sent\":%u,\"draw_released\":%u,"
        "\"draw_dropped\":%u,\"draw_queued\":%u,\"cursor_made\":%u,\"cursor_sent\":%u,"
        "\"cursor_released\":%u,\"double_releases\":%u,\"bad_releases\":%u,\"dirty\":%d}",
        event, draw_made, draw_sent, draw_released, draw_dropped, queued, cursor_made, cursor_sent,
        cursor_released, double_releases, bad_releases,
        !(dirty_top == dirty_bottom || dirty_left == dirty_right));
    pthread_mutex_unlock(&qxl_lock);
}

/* Guest agent port ("vdagent" char device) --------------------------------- */
/* Modelled on QEMU's chardev/spice.c behind virtio-serial:
 * - the guest's writes are queued as elements (one per VDIChunkHeader chunk, as
 *   spice-vdagent writes them); each element is offered like spice_chr_write:
 *   the data is made readable, spice_server_char_device_wakeup() is called and
 *   whatever `read` did not take inside that call leaves the port blocked;
 * - `read` (vmc_read) serves the offered bytes; a read while nothing is offered
 *   unblocks the port, and the main loop then offers the rest (QEMU's GSource);
 * - `state` is QEMU's be_open: until state(1) the guest's writes are discarded;
 * - `write` (towards the guest) takes everything; the bytes are parsed into
 *   chunks and VDAgentMessages, printed as "agent-msg" lines.
 * Added with `agent_add` (QEMU adds it when the guest opens the port) and
 * removed with `agent_remove`. */

typedef struct AgentElem {
    struct AgentElem *next;
    size_t len, off;
    uint8_t data[];
} AgentElem;

static int agent_added;       /* between a successful agent_add and agent_remove */
static int agent_open;        /* QEMU's chr->be_open, driven by state() */
static int agent_in_add, agent_in_remove, agent_in_wakeup;
static int agent_blocked;     /* QEMU's scd->blocked */
static const uint8_t *agent_offer_pos; /* QEMU's datapos/datalen */
static size_t agent_offer_len;
static AgentElem *agent_q_head, *agent_q_tail;
static unsigned agent_offers, agent_sync_offers, agent_partial_offers, agent_idle_reads;
static unsigned agent_discarded, agent_pending_flush;
static uint8_t *agent_wbuf;   /* bytes written towards the guest, not yet parsed */
static size_t agent_wlen, agent_wcap;
static uint8_t *agent_stream[3]; /* message streams per port (1: client, 2: server) */
static size_t agent_slen[3], agent_scap[3];
static unsigned agent_written_bytes, agent_write_calls, agent_msgs;

static void agent_late(const char *fn)
{
    if (!agent_added && !agent_in_add && !agent_in_remove) {
        out("{\"event\":\"agent-after-remove\",\"fn\":\"%s\"}", fn);
    }
}

static void agent_state(SpiceCharDeviceInstance *sin, int connected)
{
    (void)sin;
    agent_late("state");
    out("{\"event\":\"agent-state\",\"connected\":%d,\"in_add\":%d,\"in_remove\":%d,"
        "\"in_wakeup\":%d}",
        connected, agent_in_add, agent_in_remove, agent_in_wakeup);
    agent_open = connected != 0;
}

static void append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *p, size_t n)
{
    if (*len + n > *cap) {
        *cap = (*len + n) * 2;
        *buf = realloc(*buf, *cap);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Whole VDAgentMessages of one port's stream, printed and consumed. */
static void agent_parse_messages(uint32_t port)
{
    size_t at = 0;
    while (agent_slen[port] - at >= sizeof(VDAgentMessage)) {
        const uint8_t *h = agent_stream[port] + at;
        uint32_t protocol = le32(h), type = le32(h + 4), size = le32(h + 16);
        if (agent_slen[port] - at - sizeof(VDAgentMessage) < size) {
            break;
        }
        const uint8_t *d = h + sizeof(VDAgentMessage);
        char extra[160] = "";
        if (type == VD_AGENT_ANNOUNCE_CAPABILITIES && size >= 8) {
            snprintf(extra, sizeof(extra), ",\"request\":%u,\"caps\":%u", le32(d), le32(d + 4));
        } else if (type == VD_AGENT_MONITORS_CONFIG && size >= 8) {
            uint32_t n = le32(d);
            snprintf(extra, sizeof(extra), ",\"monitors\":%u,\"flags\":%u,\"width\":%u,\"height\":%u",
                     n, le32(d + 4), n && size >= 8 + 20 ? le32(d + 12) : 0,
                     n && size >= 8 + 20 ? le32(d + 8) : 0);
        } else if (type == VD_AGENT_MOUSE_STATE && size >= sizeof(VDAgentMouseState)) {
            snprintf(extra, sizeof(extra), ",\"x\":%u,\"y\":%u,\"buttons\":%u,\"display\":%u",
                     le32(d), le32(d + 4), le32(d + 8), d[12]);
        }
        agent_msgs++;
        out("{\"event\":\"agent-msg\",\"port\":%u,\"protocol\":%u,\"type\":%u,\"size\":%u,"
            "\"in_wakeup\":%d%s}",
            port, protocol, type, size, agent_in_wakeup, extra);
        at += sizeof(VDAgentMessage) + size;
    }
    memmove(agent_stream[port], agent_stream[port] + at, agent_slen[port] - at);
    agent_slen[port] -= at;
}

static int agent_write(SpiceCharDeviceInstance *sin, const uint8_t *buf, int len)
{
    (void)sin;
    agent_late("write");
    if (len <= 0) {
        return 0;
    }
    agent_write_calls++;
    agent_written_bytes += (unsigned)len;
    append(&agent_wbuf, &agent_wlen, &agent_wcap, buf, (size_t)len);
    size_t at = 0;
    while (agent_wlen - at >= sizeof(VDIChunkHeader)) {
        uint32_t port = le32(agent_wbuf + at), size = le32(agent_wbuf + at + 4);
        if (agent_wlen - at - sizeof(VDIChunkHeader) < size) {
            break;
        }
        if (port != VDP_CLIENT_PORT && port != VDP_SERVER_PORT) {
            out("{\"event\":\"agent-bad-chunk\",\"port\":%u,\"size\":%u}", port, size);
        } else {
            append(&agent_stream[port], &agent_slen[port], &agent_scap[port],
                   agent_wbuf + at + sizeof(VDIChunkHeader), size);
            agent_parse_messages(port);
        }
        at += sizeof(VDIChunkHeader) + size;
    }
    memmove(agent_wbuf, agent_wbuf + at, agent_wlen - at);
    agent_wlen -= at;
    return len;
}

static int agent_read(SpiceCharDeviceInstance *sin, uint8_t *buf, int len)
{
    (void)sin;
    agent_late("read");
    size_t bytes = len > 0 && (size_t)len < agent_offer_len ? (size_t)len : agent_offer_len;
    if (len <= 0) {
        bytes = 0;
    }
    if (bytes > 0) {
        memcpy(buf, agent_offer_pos, bytes);
        agent_offer_pos += bytes;
        agent_offer_len -= bytes;
    } else if (!agent_in_wakeup) {
        agent_idle_reads++;
    }
    if (agent_offer_len == 0) {
        agent_offer_pos = NULL;
        if (agent_blocked) {
            /* QEMU: the port's GSource becomes ready; the rest is offered from the loop. */
            agent_blocked = 0;
            agent_pending_flush = 1;
            out("{\"event\":\"agent-unblocked\",\"in_wakeup\":%d}", agent_in_wakeup);
        }
    }
    return (int)bytes;
}

static void agent_event(SpiceCharDeviceInstance *sin, uint8_t event)
{
    (void)sin;
    out("{\"event\":\"agent-port-event\",\"port_event\":%u}", event);
}

static SpiceCharDeviceInterface agent_interface = {
    .base = {
        .type = SPICE_INTERFACE_CHAR_DEVICE,
        .description = "c_host vdagent port",
        .major_version = SPICE_INTERFACE_CHAR_DEVICE_MAJOR,
        .minor_version = SPICE_INTERFACE_CHAR_DEVICE_MINOR,
    },
    .state = agent_state,
    .write = agent_write,
    .read = agent_read,
    .event = agent_event,
    .flags = SPICE_CHAR_DEVICE_NOTIFY_WRITABLE,
};
static SpiceCharDeviceInstance agent_sin = {
    .base = {.sif = &agent_interface.base},
    .subtype = "vdagent",
};

static void agent_counts(const char *event)
{
    unsigned queued = 0;
    for (AgentElem *e = agent_q_head; e; e = e->next) {
        queued++;
    }
    out("{\"event\":\"%s\",\"added\":%d,\"open\":%d,\"blocked\":%d,\"queued\":%u,"
        "\"offers\":%u,\"sync_offers\":%u,\"partial_offers\":%u,\"idle_reads\":%u,"
        "\"discarded\":%u,\"write_calls\":%u,\"written_bytes\":%u,\"msgs\":%u}",
        event, agent_added, agent_open, agent_blocked, queued, agent_offers, agent_sync_offers,
        agent_partial_offers, agent_idle_reads, agent_discarded, agent_write_calls,
        agent_written_bytes, agent_msgs);
}

static void agent_clear_queue(void)
{
    while (agent_q_head) {
        AgentElem *e = agent_q_head;
        agent_q_head = e->next;
        free(e);
    }
    agent_q_tail = NULL;
    agent_blocked = 0;
    agent_offer_pos = NULL;
    agent_offer_len = 0;
}

/* Offers queued guest data, as virtio-serial's flush does through
 * qemu_chr_fe_write -> spice_chr_write, until the port blocks. */
static void agent_flush(void)
{
    int did = 0;
    agent_pending_flush = 0;
    while (agent_added && !agent_blocked && agent_q_head) {
        AgentElem *e = agent_q_head;
        size_t len = e->len - e->off;
        did = 1;
        if (!agent_open) {
            /* spice_chr_write with !be_open: the data is dropped. */
            agent_discarded++;
            out("{\"event\":\"agent-discarded\",\"len\":%zu}", len);
            agent_q_head = e->next;
            if (!agent_q_head) {
                agent_q_tail = NULL;
            }
            free(e);
            continue;
        }
        agent_offer_pos = e->data + e->off;
        agent_offer_len = len;
        agent_in_wakeup = 1;
        spice_server_char_device_wakeup(&agent_sin);
        agent_in_wakeup = 0;
        size_t taken = len - agent_offer_len;
        agent_offers++;
        e->off += taken;
        if (taken == len) {
            agent_sync_offers++;
            agent_q_head = e->next;
            if (!agent_q_head) {
                agent_q_tail = NULL;
            }
            free(e);
        } else {
            agent_partial_offers++;
            agent_offer_pos = NULL;
            agent_offer_len = 0;
            agent_blocked = 1;
        }
        out("{\"event\":\"agent-offer\",\"len\":%zu,\"read\":%zu,\"sync\":%d}", len, taken,
            taken == len);
    }
    if (did && !agent_q_head) {
        agent_counts("agent-flushed");
    }
}

/* `count` copies of one message from the guest agent, each one chunk on
 * VDP_CLIENT_PORT: one element each (spice-vdagent writes every chunk on its
 * own), or all in one element with `one_write` (one guest write of them all). */
static void agent_queue(uint32_t type, const uint8_t *data, uint32_t size, int count,
                        int one_write)
{
    size_t one = sizeof(VDIChunkHeader) + sizeof(VDAgentMessage) + size;
    VDIChunkHeader ch = {.port = VDP_CLIENT_PORT, .size = (uint32_t)sizeof(VDAgentMessage) + size};
    VDAgentMessage mh = {.protocol = VD_AGENT_PROTOCOL, .type = type, .opaque = 0, .size = size};
    int per = one_write ? count : 1;
    for (int done = 0; done < count; done += per) {
        AgentElem *e = calloc(1, sizeof(*e) + one * (size_t)per);
        for (int i = 0; i < per; i++) {
            uint8_t *p = e->data + one * (size_t)i;
            memcpy(p, &ch, sizeof(ch));
            memcpy(p + sizeof(ch), &mh, sizeof(mh));
            if (size) {
                memcpy(p + sizeof(ch) + sizeof(mh), data, size);
            }
        }
        e->len = one * (size_t)per;
        if (agent_q_tail) {
            agent_q_tail->next = e;
        } else {
            agent_q_head = e;
        }
        agent_q_tail = e;
    }
}

static int agent_add(void)
{
    if (agent_added) {
        return -1;
    }
    agent_in_add = 1;
    int rc = spice_server_add_interface(server, &agent_sin.base);
    agent_in_add = 0;
    agent_added = rc == 0;
    out("{\"event\":\"agent-added\",\"rc\":%d,\"open\":%d}", rc, agent_open);
    return rc;
}

static int agent_remove(void)
{
    if (!agent_added) {
        return -1;
    }
    agent_in_remove = 1;
    int rc = spice_server_remove_interface(&agent_sin.base);
    agent_in_remove = 0;
    agent_added = 0;
    /* The port is closed: what the guest had not written is gone. */
    agent_clear_queue();
    out("{\"event\":\"agent-removed\",\"rc\":%d,\"open\":%d}", rc, agent_open);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Commands (stdin)                                                         */

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        return -1;
    }
    size_t w = fwrite(data, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

static void do_quit(void)
{
    quitting = 1;
    if (playback_timer) {
        core_timer_remove(playback_timer);
        playback_timer = NULL;
    }
    if (record_timer) {
        core_timer_remove(record_timer);
        record_timer = NULL;
    }
    if (refresh_timer) {
        core_timer_remove(refresh_timer);
        refresh_timer = NULL;
    }
    /* A sync destroy makes the server finish with every command it holds. */
    drop_queued_updates();
    destroy_primary();
    print_counts("counts-after-destroy-primary");
    int rc_qxl = spice_server_remove_interface(&qxl.base);
    int rc_tablet = tablet_added ? spice_server_remove_interface(&tablet.base) : 0;
    int rc_mouse = spice_server_remove_interface(&mouse.base);
    int rc_kbd = spice_server_remove_interface(&kbd.base);
    int rc_playback = spice_server_remove_interface(&playback.base);
    int rc_record = spice_server_remove_interface(&record.base);
    int rc_agent = agent_added ? agent_remove() : 0;
    out("{\"event\":\"removed\",\"qxl\":%d,\"tablet\":%d,\"mouse\":%d,\"kbd\":%d,"
        "\"playback\":%d,\"record\":%d,\"agent\":%d}",
        rc_qxl, rc_tablet, rc_mouse, rc_kbd, rc_playback, rc_record, rc_agent);
    print_counts("counts-after-remove");
    if (accept_watch) {
        core_watch_remove(accept_watch);
        accept_watch = NULL;
        close(accept_fd);
    }
    spice_server_destroy(server);
    server = NULL;
    /* The library must not have closed the host's listening socket. */
    int listen_fd_open = listen_fd >= 0 && fcntl(listen_fd, F_GETFD) >= 0;
    if (listen_fd >= 0) {
        close(listen_fd);
    }
    out("{\"event\":\"destroyed\",\"timers_left\":%d,\"watches_left\":%d,"
        "\"listen_fd_open\":%d}",
        n_timers_live, n_watches_live, listen_fd_open);
}

/*
 * Commands, one per line on stdin:
 *   update [N]            N rectangles of new pattern at deterministic places
 *   fill X Y W H SEED     one rectangle of pattern SEED
 *   resize W H            destroy_primary + create_primary (sync), then a full update
 *   cursor W H HX HY X Y MX MY   cursor SET (ALPHA) at X,Y then MOVE to MX,MY
 *   dump PATH             the host's picture: packed BGRX rows, X zeroed
 *   stats                 command counters (made, sent, released, ...)
 *   leds_get V            what get_leds returns from now on
 *   kbd_leds V            spice_server_kbd_leds(V)
 *   playback FRAMES SEED  playback_start, FRAMES of the PCM pattern (10 ms per
 *                         packet, like QEMU's audio timer), playback_stop
 *   record_start / record_stop / record_dump PATH
 *   query                 the channel infos kept since INITIALIZED
 *   update_area           spice_qxl_update_area (sync) of the whole primary, then
 *                         compare the primary's memory with the picture
 *   vm_stop / vm_start
 *   agent_add / agent_remove   add or remove the "vdagent" char device (QEMU does
 *                         when the guest opens or closes the port)
 *   agent_caps REQUEST CAP...  the guest agent sends VD_AGENT_ANNOUNCE_CAPABILITIES
 *                         with the given VD_AGENT_CAP_* bits
 *   agent_grab N SELECTION TYPE [ONE_WRITE]  N VD_AGENT_CLIPBOARD_GRAB messages
 *                         (with the selection byte), one chunk each, written one by
 *                         one or (ONE_WRITE 1) all in one guest write
 *   agent_stats           the agent port's counters
 *   quit                  destroy_primary (sync), remove every interface,
 *                         spice_server_destroy, exit
 *   scene_...             the differential drawing scene in native mode (scene.c);
 *                         scene_start first drops this host's own primary
 */
static void command(char *line)
{
    char name[32] = "";
    char path[4096] = "";
    int a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, g = 0, h = 0;
    int ok = 1;
    if (sscanf(line, "%31s", name) != 1) {
        return;
    }
    if (!strcmp(name, "update")) {
        /* update N: N rectangles of new pattern at deterministic places */
        int n = sscanf(line, "%*s %d", &a) == 1 ? a : 1;
        for (int i = 0; i < n; i++) {
            int w = (int)(rng_next() % (uint64_t)width) / 2 + 1;
            int hh = (int)(rng_next() % (uint64_t)height) / 2 + 1;
            int x = (int)(rng_next() % (uint64_t)(width - w + 1));
            int y = (int)(rng_next() % (uint64_t)(height - hh + 1));
            paint(x, y, w, hh, ++picture_seed);
        }
    } else if (!strcmp(name, "fill")) {
        /* fill X Y W H SEED */
        if (sscanf(line, "%*s %d %d %d %d %d", &a, &b, &c, &d, &e) == 5 && a >= 0 && b >= 0 &&
            c > 0 && d > 0 && a + c <= width && b + d <= height) {
            paint(a, b, c, d, (uint32_t)e);
        } else {
            ok = 0;
        }
    } else if (!strcmp(name, "resize")) {
        if (sscanf(line, "%*s %d %d", &a, &b) == 2 && a > 0 && b > 0 && a <= 4096 && b <= 4096) {
            drop_queued_updates();
            destroy_primary();
            width = a;
            height = b;
            dirty_top = dirty_bottom = dirty_left = dirty_right = 0;
            create_primary();
            paint(0, 0, width, height, ++picture_seed);
        } else {
            ok = 0;
        }
    } else if (!strcmp(name, "cursor")) {
        /* cursor W H HOTX HOTY X Y MOVEX MOVEY */
        if (sscanf(line, "%*s %d %d %d %d %d %d %d %d", &a, &b, &c, &d, &e, &f, &g, &h) == 8 &&
            a > 0 && b > 0 && a <= 512 && b <= 512) {
            send_cursor(a, b, c, d, e, f, g, h);
        } else {
            ok = 0;
        }
    } else if (!strcmp(name, "dump")) {
        /* dump PATH: the host's picture, packed BGRX rows, X zeroed */
        if (sscanf(line, "%*s %4095s", path) == 1) {
            size_t n = (size_t)width * height;
            uint32_t *copy = malloc(n * 4);
            for (size_t i = 0; i < n; i++) {
                copy[i] = fb[i] & 0x00FFFFFFu;
            }
            ok = write_file(path, copy, n * 4) == 0;
            free(copy);
            out("{\"event\":\"dumped\",\"width\":%d,\"height\":%d}", width, height);
        } else {
            ok = 0;
        }
    } else if (!strcmp(name, "stats")) {
        print_counts("counts");
    } else if (!strcmp(name, "leds_get")) {
        /* leds_get V: what get_leds returns from now on */
        ok = sscanf(line, "%*s %d", &guest_leds) == 1;
    } else if (!strcmp(name, "kbd_leds")) {
        if (sscanf(line, "%*s %d", &a) == 1) {
            int rc = spice_server_kbd_leds(&kbd, a);
            out("{\"event\":\"kbd-leds-called\",\"leds\":%d,\"rc\":%d}", a, rc);
        } else {
            ok = 0;
        }
    } else if (!strcmp(name, "playback")) {
        /* playback FRAMES SEED */
        if (sscanf(line, "%*s %d %d", &a, &b) == 2 && a > 0 && !playback_timer) {
            pcm_seed((uint32_t)b);
            playback_total = (uint32_t)a;
            playback_done = playback_packets = playback_waits = 0;
            playback_stopping = 0;
            spice_server_playback_start(&playback);
            playback_timer = core_timer_add(playback_tick, NULL);
            playback_timer->host = 1;
            core_timer_start(playback_timer, 0);
        } else {
            ok = 0;
        }
    } else if (!strcmp(name, "playback_end")) {
        if (playback_timer) {
            core_timer_remove(playback_timer);
            playback_timer = NULL;
        }
    } else if (!strcmp(name, "record_start")) {
        if (!recording) {
            recording = 1;
            record_len = 0;
            spice_server_record_start(&record);
            if (!record_timer) {
                record_timer = core_timer_add(record_tick, NULL);
                record_timer->host = 1;
            }
            core_timer_start(record_timer, AUDIO_TICK_MS);
        }
    } else if (!strcmp(name, "record_stop")) {
        if (recording) {
            recording = 0;
            core_timer_cancel(record_timer);
            spice_server_record_stop(&record);
        }
        out("{\"event\":\"record-stopped\",\"frames\":%zu,\"fnv\":\"%016" PRIx64 "\"}",
            record_len / 4, fnv1a(record_buf, record_len));
    } else if (!strcmp(name, "record_dump")) {
        ok = sscanf(line, "%*s %4095s", path) == 1 && write_file(path, record_buf, record_len) == 0;
    } else if (!strcmp(name, "query")) {
        /* Reads every channel info kept since INITIALIZED, like query-spice. */
        for (int i = 0; i < MAX_INFOS; i++) {
            if (infos[i]) {
                char peer[64];
                int port;
                peer_of(infos[i], peer, sizeof(peer), &port);
                out("{\"event\":\"query-channel\",\"type\":%d,\"id\":%d,\"connection_id\":%d,"
                    "\"flags\":%d,\"peer\":\"%s\",\"port\":%d}",
                    infos[i]->type, infos[i]->id, infos[i]->connection_id, infos[i]->flags, peer,
                    port);
            }
        }
        out("{\"event\":\"query-end\",\"server_mouse\":%d}",
            spice_server_is_server_mouse(server));
    } else if (!strcmp(name, "update_area")) {
        /* Sync update_area of the whole primary, then compare the surface memory
         * the server was given (bottom-up: the stride is negative) with the picture. */
        if (primary_live) {
            QXLRect area = {.top = 0, .left = 0, .bottom = height, .right = width};
            QXLRect dirty[1];
            memset(dirty, 0, sizeof(dirty));
            spice_qxl_update_area(&qxl, 0, &area, dirty, 1, 0);
            long match = 0;
            for (int y = 0; y < height; y++) {
                const uint8_t *row = primary_buf + (size_t)(height - 1 - y) * width * 4;
                for (int x = 0; x < width; x++) {
                    uint32_t px;
                    memcpy(&px, row + (size_t)x * 4, 4);
                    match += (px & 0x00FFFFFFu) == fb[y * width + x];
                }
            }
            out("{\"event\":\"primary-memory\",\"match\":%ld,\"pixels\":%ld}", match,
                (long)width * height);
        } else {
            ok = 0;
        }
    } else if (!strcmp(name, "vm_stop")) {
        spice_server_vm_stop(server);
        vm_running_flag = 0;
    } else if (!strcmp(name, "vm_start")) {
        start_vm();
    } else if (!strcmp(name, "drop_wakeups")) {
        /* drop_wakeups 0|1: 1 = commands are queued without spice_qxl_wakeup */
        ok = sscanf(line, "%*s %d", &drop_wakeups) == 1;
    } else if (!strcmp(name, "cpu")) {
        /* cpu: the library's CPU on the main thread and on its worker thread,
         * and how many threads are named "SPICE Worker" */
        int workers = 0;
        char task_path[300], comm[64];
        struct dirent *de;
        DIR *dir = opendir("/proc/self/task");
        while (dir && (de = readdir(dir))) {
            if (de->d_name[0] == '.') {
                continue;
            }
            snprintf(task_path, sizeof(task_path), "/proc/self/task/%s/comm", de->d_name);
            FILE *f = fopen(task_path, "r");
            if (!f) {
                continue;
            }
            int named = fgets(comm, sizeof(comm), f) && !strncmp(comm, "SPICE Worker", 12);
            fclose(f);
            if (!named) {
                continue;
            }
            workers++;
        }
        if (dir) {
            closedir(dir);
        }
        int64_t worker_ns = -1;
        pthread_mutex_lock(&qxl_lock);
        clockid_t cid;
        if (worker_thread_known && pthread_getcpuclockid(worker_thread, &cid) == 0) {
            struct timespec ts;
            if (clock_gettime(cid, &ts) == 0) {
                worker_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
            }
        }
        pthread_mutex_unlock(&qxl_lock);
        out("{\"event\":\"cpu\",\"lib_main_us\":%" PRId64 ",\"worker_us\":%" PRId64
            ",\"workers\":%d,\"stopped_callbacks\":%u}",
            lib_main_ns / 1000, worker_ns < 0 ? -1 : worker_ns / 1000, workers, stopped_callbacks);
    } else if (!strcmp(name, "agent_add")) {
        ok = agent_add() == 0;
    } else if (!strcmp(name, "agent_remove")) {
        ok = agent_remove() == 0;
    } else if (!strcmp(name, "agent_caps")) {
        /* agent_caps REQUEST CAP...: the guest agent announces its capabilities */
        char *p = line + strlen(name);
        int n = 0, request = 0, cap;
        uint32_t word = 0;
        if (agent_added && sscanf(p, "%d%n", &request, &n) == 1) {
            p += n;
            while (sscanf(p, "%d%n", &cap, &n) == 1 && cap >= 0 && cap < 32) {
                word |= 1u << cap;
                p += n;
            }
            uint8_t data[8];
            uint32_t req = (uint32_t)request;
            memcpy(data, &req, 4);
            memcpy(data + 4, &word, 4);
            agent_queue(VD_AGENT_ANNOUNCE_CAPABILITIES, data, sizeof(data), 1, 0);
            agent_flush();
        } else {
            ok = 0;
        }
    } else if (!strcmp(name, "agent_grab")) {
        /* agent_grab N SELECTION TYPE [ONE_WRITE] */
        if (agent_added && sscanf(line, "%*s %d %d %d %d", &a, &b, &c, &d) >= 3 && a > 0) {
            uint8_t data[8] = {(uint8_t)b, 0, 0, 0};
            uint32_t type = (uint32_t)c;
            memcpy(data + 4, &type, 4);
            agent_queue(VD_AGENT_CLIPBOARD_GRAB, data, sizeof(data), a, d);
            agent_flush();
        } else {
            ok = 0;
        }
    } else if (!strcmp(name, "agent_stats")) {
        agent_counts("agent-counts");
    } else if (!strncmp(name, "scene_", 6)) {
        if (!strcmp(name, "scene_start")) {
            drop_queued_updates();
            destroy_primary();
        }
        ok = scene_command(&qxl, name, line) == 1;
    } else if (!strcmp(name, "quit")) {
        do_quit();
    } else {
        ok = 0;
    }
    out("{\"event\":\"%s\",\"cmd\":\"%s\"}", ok ? "ok" : "error", name);
}

/* ------------------------------------------------------------------------ */
/* Main loop                                                                */

static void collect_garbage(void)
{
    pthread_mutex_lock(&core_lock);
    for (SpiceTimer **p = &timers; *p;) {
        if ((*p)->removed) {
            SpiceTimer *dead = *p;
            *p = dead->next;
            free(dead);
        } else {
            p = &(*p)->next;
        }
    }
    for (SpiceWatch **p = &watches; *p;) {
        if ((*p)->removed) {
            SpiceWatch *dead = *p;
            *p = dead->next;
            free(dead);
        } else {
            p = &(*p)->next;
        }
    }
    pthread_mutex_unlock(&core_lock);
}

static void run_loop(void)
{
    char in_buf[8192];
    size_t in_len = 0;
    int stdin_open = 1;
    struct pollfd *fds = NULL;
    SpiceWatch **snap = NULL;
    size_t cap = 0;

    while (!quitting) {
        collect_garbage();
        /* QEMU's chardev GSource: an unblocked port offers the rest of its data. */
        if (agent_pending_flush || (agent_q_head && !agent_blocked)) {
            agent_flush();
        }

        pthread_mutex_lock(&core_lock);
        size_t n = 2;
        for (SpiceWatch *w = watches; w; w = w->next) {
            n++;
        }
        if (n > cap) {
            cap = n * 2;
            fds = realloc(fds, cap * sizeof(*fds));
            snap = realloc(snap, cap * sizeof(*snap));
        }
        fds[0].fd = stdin_open ? 0 : -1;
        fds[0].events = POLLIN;
        fds[1].fd = wake_pipe[0];
        fds[1].events = POLLIN;
        size_t i = 2;
        for (SpiceWatch *w = watches; w; w = w->next, i++) {
            snap[i] = w;
            fds[i].fd = w->removed || !w->mask ? -1 : w->fd;
            fds[i].events = (short)(((w->mask & SPICE_WATCH_EVENT_READ) ? POLLIN : 0) |
                                    ((w->mask & SPICE_WATCH_EVENT_WRITE) ? POLLOUT : 0));
            fds[i].revents = 0;
        }
        int64_t now = now_ms();
        int64_t next = -1;
        for (SpiceTimer *t = timers; t; t = t->next) {
            if (!t->removed && t->deadline >= 0 && (next < 0 || t->deadline < next)) {
                next = t->deadline;
            }
        }
        pthread_mutex_unlock(&core_lock);

        int timeout = next < 0 ? -1 : (int)(next > now ? next - now : 0);
        int rc = poll(fds, n, timeout);
        if (rc < 0 && errno != EINTR) {
            perror("poll");
            exit(2);
        }

        /* Timers first: every one that is due, in no particular order. */
        for (;;) {
            SpiceTimer *due = NULL;
            int64_t t_now = now_ms();
            pthread_mutex_lock(&core_lock);
            for (SpiceTimer *t = timers; t; t = t->next) {
                if (!t->removed && t->deadline >= 0 && t->deadline <= t_now) {
                    due = t;
                    break;
                }
            }
            if (due) {
                due->deadline = -1; /* one-shot */
            }
            pthread_mutex_unlock(&core_lock);
            if (!due || quitting) {
                break;
            }
            int64_t t0 = thread_cpu_ns();
            due->func(due->opaque);
            if (!due->host) {
                lib_main_ns += thread_cpu_ns() - t0;
            }
        }
        if (rc <= 0) {
            continue;
        }

        if (fds[1].revents & POLLIN) {
            char drain[64];
            ssize_t r = read(wake_pipe[0], drain, sizeof(drain));
            (void)r;
        }

        /* Watches: level-triggered; read then write, each re-checked because a
         * callback may remove or change any watch. */
        for (size_t k = 2; k < n && !quitting; k++) {
            SpiceWatch *w = snap[k];
            short re = fds[k].revents;
            if (!re || fds[k].fd < 0) {
                continue;
            }
            int64_t t0 = thread_cpu_ns();
            if (!w->removed && (w->mask & SPICE_WATCH_EVENT_READ) &&
                (re & (POLLIN | POLLHUP | POLLERR))) {
                w->func(w->fd, SPICE_WATCH_EVENT_READ, w->opaque);
            }
            if (!w->removed && (w->mask & SPICE_WATCH_EVENT_WRITE) && (re & (POLLOUT | POLLERR))) {
                w->func(w->fd, SPICE_WATCH_EVENT_WRITE, w->opaque);
            }
            lib_main_ns += thread_cpu_ns() - t0;
        }

        if (stdin_open && (fds[0].revents & (POLLIN | POLLHUP))) {
            ssize_t r = read(0, in_buf + in_len, sizeof(in_buf) - 1 - in_len);
            if (r <= 0) {
                stdin_open = 0;
                if (!quitting) {
                    do_quit();
                }
                break;
            }
            in_len += (size_t)r;
            char *start = in_buf;
            char *nl;
            while (!quitting && (nl = memchr(start, '\n', in_len - (size_t)(start - in_buf)))) {
                *nl = 0;
                command(start);
                start = nl + 1;
            }
            in_len -= (size_t)(start - in_buf);
            memmove(in_buf, start, in_len);
            if (in_len == sizeof(in_buf) - 1) {
                in_len = 0; /* an over-long line: drop it */
            }
        }
    }
    free(fds);
    free(snap);
}

/* ------------------------------------------------------------------------ */
/* Start-up, in QEMU's order                                                */

static void print_loaded_library(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096];
    char lib[4096] = "";
    while (maps && fgets(line, sizeof(line), maps)) {
        char *p = strstr(line, "libspice-server");
        if (p) {
            char *path = strchr(line, '/');
            if (path) {
                path[strcspn(path, "\n")] = 0;
                json_escape(lib, sizeof(lib), path);
                break;
            }
        }
    }
    if (maps) {
        fclose(maps);
    }
    out("{\"event\":\"library\",\"path\":\"%s\"}", lib);
}

int main(int argc, char **argv)
{
    int port = -1;
    const char *password = NULL;
    const char *name = "c_host";
    int with_tablet = 1;
    int initial_picture = 1;
    int jpeg = 0;
    const char *unix_listen = NULL;
    const char *accept_path = NULL;
    const char *listen_fd_path = NULL;
    /* 0: the best rate the library reports (48000), as QEMU does */
    uint32_t audio_rate = 0;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) {
            port = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--password")) {
            password = argv[i + 1];
        } else if (!strcmp(argv[i], "--width")) {
            width = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--height")) {
            height = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--name")) {
            name = argv[i + 1];
        } else if (!strcmp(argv[i], "--picture")) {
            /* --picture 0: the primary stays black until a command draws */
            initial_picture = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--monitors-config")) {
            /* --monitors-config 0: the device does not take client monitor configurations */
            monitors_config_supported = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--setup-in-attached")) {
            /* --setup-in-attached 1: memslot, primary and vm_start from attached_worker */
            setup_in_attached = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--unix-listen")) {
            unix_listen = argv[i + 1];
        } else if (!strcmp(argv[i], "--accept")) {
            accept_path = argv[i + 1];
        } else if (!strcmp(argv[i], "--listen-fd")) {
            listen_fd_path = argv[i + 1];
        } else if (!strcmp(argv[i], "--audio-rate")) {
            /* --audio-rate 44100: playback and record at another rate than the best */
            audio_rate = (uint32_t)atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--jpeg")) {
            /* --jpeg 1: every image QUIC-bound, and JPEG instead of QUIC, as
             * QEMU's image-compression=quic,jpeg-wan-compression=always */
            jpeg = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--tablet")) {
            /* --tablet 0: a guest without an absolute pointer (server mouse mode) */
            with_tablet = atoi(argv[i + 1]);
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (port <= 0 || width <= 0 || height <= 0) {
        fprintf(stderr, "usage: host --port N [--password P] [--width W] [--height H] "
                        "[--name NAME] [--tablet 0|1] [--picture 0|1] [--jpeg 0|1]\n");
        return 2;
    }
    /* As QEMU: a client that goes away must not kill the host. Debian's
     * library writes to WebSocket clients with plain write(), which raises
     * SIGPIPE when spice-html5 closes during playback. */
    signal(SIGPIPE, SIG_IGN);
    main_thread = pthread_self();
    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        perror("pipe2");
        return 2;
    }

    print_loaded_library();

    server = spice_server_new();
    if (!server) {
        out("{\"event\":\"fatal\",\"what\":\"spice_server_new\"}");
        return 1;
    }
    if (listen_fd_path) {
        listen_fd = unix_listener(listen_fd_path);
        int rc = listen_fd < 0 ? -1 : spice_server_set_listen_socket_fd(server, listen_fd);
        out("{\"event\":\"listen-fd\",\"rc\":%d}", rc);
    } else {
        spice_server_set_port(server, port);
    }
    spice_server_set_addr(server, "127.0.0.1", 0);
    if (unix_listen) {
        spice_server_set_addr(server, unix_listen, SPICE_ADDR_FLAG_UNIX_ONLY);
    }
    if (password) {
        spice_server_set_ticket(server, password, 0, 0, 0);
    } else {
        spice_server_set_noauth(server);
    }
    spice_server_set_image_compression(server, jpeg ? SPICE_IMAGE_COMPRESSION_QUIC
                                                    : SPICE_IMAGE_COMPRESSION_OFF);
    spice_server_set_jpeg_compression(server, jpeg ? SPICE_WAN_COMPRESSION_ALWAYS
                                                   : SPICE_WAN_COMPRESSION_NEVER);
    spice_server_set_zlib_glz_compression(server, SPICE_WAN_COMPRESSION_NEVER);
    /* QEMU's default; streaming would turn repeated strips into lossy video. */
    spice_server_set_streaming_video(server, SPICE_STREAM_VIDEO_OFF);
    /* QEMU's default is on; spice-gtk then gets Opus if it can decode it. */
    spice_server_set_playback_compression(server, 1);
    spice_server_set_agent_mouse(server, 1);
    spice_server_set_name(server, name);
    static const uint8_t uuid[16] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
                                     1,    2,    3,    4,    5,    6,    7,    8};
    spice_server_set_uuid(server, uuid);
    if (spice_server_init(server, &core) != 0) {
        out("{\"event\":\"fatal\",\"what\":\"spice_server_init\"}");
        return 1;
    }
    if (accept_path) {
        accept_fd = unix_listener(accept_path);
        if (accept_fd < 0) {
            out("{\"event\":\"fatal\",\"what\":\"accept socket\"}");
            return 1;
        }
        accept_watch = core_watch_add(accept_fd, SPICE_WATCH_EVENT_READ, on_host_accept, NULL);
    }

    int rc_kbd = spice_server_add_interface(server, &kbd.base);
    int rc_mouse = spice_server_add_interface(server, &mouse.base);
    int rc_tablet = with_tablet ? spice_server_add_interface(server, &tablet.base) : 0;
    tablet_added = with_tablet && rc_tablet == 0;
    int rc_playback = spice_server_add_interface(server, &playback.base);
    spice_server_set_playback_rate(&playback,
                                   audio_rate ? audio_rate : spice_server_get_best_playback_rate(NULL));
    int rc_record = spice_server_add_interface(server, &record.base);
    spice_server_set_record_rate(&record,
                                 audio_rate ? audio_rate : spice_server_get_best_record_rate(NULL));
    int rc_qxl = spice_server_add_interface(server, &qxl.base);
    out("{\"event\":\"added\",\"kbd\":%d,\"mouse\":%d,\"tablet\":%d,\"playback\":%d,"
        "\"record\":%d,\"qxl\":%d}",
        rc_kbd, rc_mouse, rc_tablet, rc_playback, rc_record, rc_qxl);
    if (rc_qxl != 0) {
        return 1;
    }
    spice_qxl_set_device_info(&qxl, "pci/0000/02.0", 0, 1);

    if (!setup_in_attached) {
        add_host_memslot();
        create_primary();
    }
    if (initial_picture) {
        paint(0, 0, width, height, picture_seed);
    }
    if (!setup_in_attached) {
        start_vm();
    }

    refresh_timer = core_timer_add(refresh, NULL);
    refresh_timer->host = 1;
    core_timer_start(refresh_timer, 0);

    out("{\"event\":\"ready\",\"port\":%d,\"version\":%d}", port, SPICE_SERVER_VERSION);
    run_loop();

    /* The server is gone: nothing refers to the commands any more. */
    while (all_updates) {
        Update *u = all_updates;
        all_updates = u->all_next;
        free(u->bitmap);
        free(u);
    }
    while (all_cursors) {
        Cursor *c = all_cursors;
        all_cursors = c->all_next;
        free(c);
    }
    free(fb);
    free(mirror);
    free(primary_buf);
    collect_garbage();
    out("{\"event\":\"exit\"}");
    return 0;
}
