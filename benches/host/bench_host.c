/*
 * SPDX-License-Identifier: MIT OR Apache-2.0
 *
 * bench_host.c: the benchmark host of spice-rs. It drives libspice-server.so.1
 * through its public C ABI (spice.h) the way QEMU's simple display does, so the
 * same program runs against Debian's C library and against ours
 * (LD_LIBRARY_PATH picks one), and draws content that looks like real use.
 *
 * - A poll()-based main loop implements SpiceCoreInterface (one-shot timers,
 *   level-triggered fd watches), as in the test host (crates/spice-capi/tests/
 *   c_host/host.c).
 * - Keyboard, mouse and tablet (they do nothing) and one QXL instance: the
 *   simple display's primary surface (32-bit xRGB, negative stride), and every
 *   REFRESH_MS, when the server has taken every queued command, the damaged
 *   region is cut into DRAW_COPY column strips at most STRIP pixels wide (one
 *   command per run of changed rows), then spice_qxl_wakeup. Commands are freed
 *   in release_resource, as QEMU does.
 * - Image compression defaults to auto_glz (the server's and QEMU's default),
 *   JPEG to never (lossless), zlib-GLZ to auto and video streaming to off (QEMU's
 *   defaults).
 * - Scenarios, drawn deterministically into the guest's framebuffer at a fixed
 *   frame rate for a fixed number of frames:
 *     terminal   a terminal window scrolling build and log output over a desktop
 *     slideshow  a photo viewer switching procedural photos every N frames
 *     video      a 320x240 player region with smooth changing content at 30 fps
 *     clock      an idle desktop where only the taskbar clock changes each second
 *
 * Events go to stdout, one JSON object per line: "library", "ready" (with the
 * CRC-32 of the first frame), "started", "last-update" (after the last frame
 * was drawn: its time, CLOCK_MONOTONIC microseconds, and the CRC-32 of the
 * final frame), "counts" (the draw counters, and CPU to the microsecond: the
 * process's, the main thread's, and the library's part of the main thread's),
 * "exit". The CRC-32 (zlib's) is taken over the frame
 * as packed rows of 4-byte pixels B, G, R, 0, top row first.
 *
 * Commands on stdin, one per line: start, stats, crc, dump PATH, quit. Each ends
 * with {"event":"ok","cmd":NAME} (or "error").
 *
 * Usage: bench_host --port N --scenario terminal|slideshow|video|clock
 *                   [--frames N] [--width W] [--height H] [--switch-every N]
 *                   [--compression off|auto_glz|auto_lz|quic|glz|lz|lz4]
 *                   [--jpeg never|auto|always] [--zlib-glz never|auto|always]
 *                   [--streaming off|all|filter] [--damage strips|tiles]
 *                   [--video-codecs LIST]  (spice_server_set_video_codecs,
 *                   say gstreamer:vp8; default the library's own list)
 *                   [--dump-video DIR]  (each video frame's picture as
 *                   DIR/NNNN.raw; "ready" says where the picture is)
 *
 * Written for spice-rs; no code is taken from QEMU.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <spice.h>

#include "font.h"

#define STRIP 32           /* QEMU's simple display: column blocks of 32 pixels */
#define TILE 32            /* --damage tiles: VNC-style 32x32 tiles */
#define REFRESH_MS 30      /* QEMU's display refresh period */
#define MEMSLOT_GROUP_HOST 0
#define UPDATE_MAGIC 0x55504454u /* "UPDT" */

/* ------------------------------------------------------------------------ */
/* Output and time                                                          */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t main_thread;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
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

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* CPU time of the calling thread, to the microsecond. */
static int64_t thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The main thread's CPU spent in the library: its calls (set-up, wake-ups,
 * surfaces) and the timers and watches it registered on this loop. With the
 * library's own threads, this is the library's CPU measured in the run itself,
 * free of the run-to-run noise of subtracting a separate host-alone run. */
static int64_t library_main_us;

/* Runs STMT on the main thread and counts its CPU as the library's. */
#define IN_LIBRARY(stmt)                                                                           \
    do {                                                                                           \
        int64_t in_library_from_ = thread_cpu_us();                                                \
        stmt;                                                                                      \
        library_main_us += thread_cpu_us() - in_library_from_;                                     \
    } while (0)

static int64_t now_ms(void)
{
    return now_us() / 1000;
}

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

static pthread_mutex_t core_lock = PTHREAD_MUTEX_INITIALIZER;
static struct SpiceTimer *timers;
static struct SpiceWatch *watches;
static int wake_pipe[2] = {-1, -1};

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
    t->removed = 1;
    t->deadline = -1;
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
    w->removed = 1;
    w->mask = 0;
    pthread_mutex_unlock(&core_lock);
}

static void core_channel_event(int event, SpiceChannelEventInfo *info)
{
    check_thread("channel_event");
    out("{\"event\":\"channel\",\"ev\":%d,\"type\":%d,\"id\":%d}", event, info->type, info->id);
}

static SpiceCoreInterface core = {
    .base = {
        .type = SPICE_INTERFACE_CORE,
        .description = "bench_host poll loop",
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
/* Input devices: present, as in QEMU, and quiet                            */

static SpiceServer *server;
static int quitting;

static void kbd_push_scan_freg(SpiceKbdInstance *sin, uint8_t frag)
{
    (void)sin;
    (void)frag;
}

static uint8_t kbd_get_leds(SpiceKbdInstance *sin)
{
    (void)sin;
    return 0;
}

static const SpiceKbdInterface kbd_interface = {
    .base = {
        .type = SPICE_INTERFACE_KEYBOARD,
        .description = "bench_host keyboard",
        .major_version = SPICE_INTERFACE_KEYBOARD_MAJOR,
        .minor_version = SPICE_INTERFACE_KEYBOARD_MINOR,
    },
    .push_scan_freg = kbd_push_scan_freg,
    .get_leds = kbd_get_leds,
};
static SpiceKbdInstance kbd = {.base = {.sif = &kbd_interface.base}};

static void mouse_motion(SpiceMouseInstance *sin, int dx, int dy, int dz, uint32_t buttons)
{
    (void)sin;
    (void)dx;
    (void)dy;
    (void)dz;
    (void)buttons;
}

static void mouse_buttons(SpiceMouseInstance *sin, uint32_t buttons)
{
    (void)sin;
    (void)buttons;
}

static const SpiceMouseInterface mouse_interface = {
    .base = {
        .type = SPICE_INTERFACE_MOUSE,
        .description = "bench_host mouse",
        .major_version = SPICE_INTERFACE_MOUSE_MAJOR,
        .minor_version = SPICE_INTERFACE_MOUSE_MINOR,
    },
    .motion = mouse_motion,
    .buttons = mouse_buttons,
};
static SpiceMouseInstance mouse = {.base = {.sif = &mouse_interface.base}};

static void tablet_set_logical_size(SpiceTabletInstance *sin, int w, int h)
{
    (void)sin;
    (void)w;
    (void)h;
}

static void tablet_position(SpiceTabletInstance *sin, int x, int y, uint32_t buttons)
{
    (void)sin;
    (void)x;
    (void)y;
    (void)buttons;
}

static void tablet_wheel(SpiceTabletInstance *sin, int wheel, uint32_t buttons)
{
    (void)sin;
    (void)wheel;
    (void)buttons;
}

static void tablet_buttons(SpiceTabletInstance *sin, uint32_t buttons)
{
    (void)sin;
    (void)buttons;
}

static const SpiceTabletInterface tablet_interface = {
    .base = {
        .type = SPICE_INTERFACE_TABLET,
        .description = "bench_host tablet",
        .major_version = SPICE_INTERFACE_TABLET_MAJOR,
        .minor_version = SPICE_INTERFACE_TABLET_MINOR,
    },
    .set_logical_size = tablet_set_logical_size,
    .position = tablet_position,
    .wheel = tablet_wheel,
    .buttons = tablet_buttons,
};
static SpiceTabletInstance tablet = {.base = {.sif = &tablet_interface.base}};

/* ------------------------------------------------------------------------ */
/* Display (QXL, simple display)                                            */

typedef struct Update {
    uint32_t magic;
    struct Update *next; /* queue */
    QXLDrawable drawable;
    QXLImage image;
    QXLCommandExt ext;
    uint8_t *bitmap;
    size_t bitmap_size;
} Update;

static pthread_mutex_t qxl_lock = PTHREAD_MUTEX_INITIALIZER;
static Update *draw_head, *draw_tail;
static uint64_t draw_made, draw_sent, draw_released, bad_releases;
static uint64_t bytes_made; /* raw bitmap bytes handed to the server */
static uint64_t image_unique = 1;

static int width = 1024, height = 768;
static uint32_t *fb;     /* the guest's framebuffer (xRGB, top-down, X = 0) */
static uint32_t *mirror; /* what has been sent, like QEMU's mirror */
static uint8_t *primary_buf; /* handed to the server as surface memory */
static int dirty_top, dirty_left, dirty_bottom, dirty_right; /* empty when top == bottom */
static int notify;
static uint64_t dirty_marks; /* every change the guest made */
static int primary_live;
static SpiceTimer *refresh_timer;

static void mark_dirty(int x, int y, int w, int h)
{
    if (x < 0) {
        w += x;
        x = 0;
    }
    if (y < 0) {
        h += y;
        y = 0;
    }
    if (x + w > width) {
        w = width - x;
    }
    if (y + h > height) {
        h = height - y;
    }
    if (w <= 0 || h <= 0) {
        return;
    }
    dirty_marks++;
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

/* One DRAW_COPY of a rectangle of the picture, taken from the mirror after
 * bringing it up to date, as the simple display builds them. */
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
    if (draw_tail) {
        draw_tail->next = u;
    } else {
        draw_head = u;
    }
    draw_tail = u;
    draw_made++;
    bytes_made += u->bitmap_size;
    pthread_mutex_unlock(&qxl_lock);
}

/* How damage is cut into commands: QEMU's column strips, or tiles. */
static int damage_tiles;

/* The tile at tile column tx, row ty differs from the mirror. */
static int tile_dirty(int tx, int ty)
{
    int x = tx * TILE, y0 = ty * TILE;
    int w = width - x < TILE ? width - x : TILE;
    int h = height - y0 < TILE ? height - y0 : TILE;
    for (int y = y0; y < y0 + h; y++) {
        if (memcmp(&fb[y * width + x], &mirror[y * width + x], (size_t)w * 4) != 0) {
            return 1;
        }
    }
    return 0;
}

/* The way VNC-style hosts report damage: the frame is compared with what was
 * sent in 32x32 tiles; horizontally adjacent dirty tiles of a tile row make a
 * run, and a run continues downwards while the next tile row has a dirty run
 * with the same span; each resulting rectangle is one command. */
static void create_tile_updates(void)
{
    int cols = (width + TILE - 1) / TILE, rows = (height + TILE - 1) / TILE;
    int ty0 = dirty_top / TILE, ty1 = (dirty_bottom + TILE - 1) / TILE;
    int tx0 = dirty_left / TILE, tx1 = (dirty_right + TILE - 1) / TILE;
    unsigned char *dirty = calloc((size_t)cols * rows, 1);
    for (int ty = ty0; ty < ty1 && ty < rows; ty++) {
        for (int tx = tx0; tx < tx1 && tx < cols; tx++) {
            dirty[ty * cols + tx] = (unsigned char)tile_dirty(tx, ty);
        }
    }
    for (int ty = 0; ty < rows; ty++) {
        for (int tx = 0; tx < cols; tx++) {
            if (!dirty[ty * cols + tx]) {
                continue;
            }
            int end = tx;
            while (end < cols && dirty[ty * cols + end]) {
                end++;
            }
            /* Grow downwards while the row below has the same run (and no more). */
            int bottom = ty + 1;
            while (bottom < rows) {
                int same = 1;
                for (int x = tx; x < end && same; x++) {
                    same = dirty[bottom * cols + x];
                }
                if (same && tx > 0 && dirty[bottom * cols + tx - 1]) {
                    same = 0;
                }
                if (same && end < cols && dirty[bottom * cols + end]) {
                    same = 0;
                }
                if (!same) {
                    break;
                }
                bottom++;
            }
            for (int y = ty; y < bottom; y++) {
                memset(&dirty[y * cols + tx], 0, (size_t)(end - tx));
            }
            int right = end * TILE < width ? end * TILE : width;
            int lower = bottom * TILE < height ? bottom * TILE : height;
            queue_one_update(tx * TILE, ty * TILE, right, lower);
        }
    }
    free(dirty);
    dirty_top = dirty_bottom = dirty_left = dirty_right = 0;
}

/* The dirty bounding box, cut into column blocks of STRIP pixels; within a
 * block, each run of rows that differ from the mirror becomes one command. */
static void create_updates(void)
{
    if (dirty_top == dirty_bottom || dirty_left == dirty_right) {
        return;
    }
    if (damage_tiles) {
        create_tile_updates();
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

static QXLInstance qxl;

/* The first refresh tick after the guest's latest change: when the host first
 * tried to hand that change to the server (it waits for the server to take
 * every queued command, so a slow server still counts). Main loop only. */
static int64_t tick_after_change_us;
static int64_t tick_change_ref_us;
static int64_t last_change_us;

/* QEMU's display refresh: build updates when the server has taken every queued
 * command, then wake the worker. Runs on the main loop every REFRESH_MS. */
static void refresh(void *opaque)
{
    (void)opaque;
    if (last_change_us > tick_change_ref_us) {
        tick_change_ref_us = last_change_us;
        tick_after_change_us = now_us();
    }
    if (primary_live) {
        pthread_mutex_lock(&qxl_lock);
        int empty = draw_head == NULL;
        pthread_mutex_unlock(&qxl_lock);
        if (empty) {
            create_updates();
        }
        if (notify) {
            notify = 0;
            IN_LIBRARY(spice_qxl_wakeup(&qxl));
        }
    }
    if (!quitting) {
        core_timer_start(refresh_timer, REFRESH_MS);
    }
}

static void qxl_attached_worker(QXLInstance *qin)
{
    (void)qin;
}

static void qxl_set_compression_level(QXLInstance *qin, int level)
{
    (void)qin;
    (void)level;
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
}

static int qxl_get_command(QXLInstance *qin, QXLCommandExt *ext)
{
    (void)qin;
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
    return 1;
}

static void qxl_release_resource(QXLInstance *qin, QXLReleaseInfoExt rext)
{
    (void)qin;
    QXLCommandExt *ext = (QXLCommandExt *)(uintptr_t)rext.info->id;
    Update *u = (Update *)((char *)ext - offsetof(Update, ext));
    pthread_mutex_lock(&qxl_lock);
    if (ext->cmd.type != QXL_CMD_DRAW || u->magic != UPDATE_MAGIC) {
        bad_releases++;
        u = NULL;
    } else {
        u->magic = 0;
        draw_released++;
    }
    pthread_mutex_unlock(&qxl_lock);
    if (u) {
        /* QEMU frees it here. */
        free(u->bitmap);
        free(u);
    }
}

static int qxl_get_cursor_command(QXLInstance *qin, QXLCommandExt *ext)
{
    (void)qin;
    (void)ext;
    return 0;
}

static int qxl_req_cursor_notification(QXLInstance *qin)
{
    (void)qin;
    return 1;
}

static void qxl_notify_update(QXLInstance *qin, uint32_t update_id)
{
    (void)qin;
    out("{\"event\":\"qxl-unexpected\",\"fn\":\"notify_update\",\"arg\":%u}", update_id);
}

static int qxl_flush_resources(QXLInstance *qin)
{
    (void)qin;
    out("{\"event\":\"qxl-unexpected\",\"fn\":\"flush_resources\"}");
    return 0;
}

static void qxl_async_complete(QXLInstance *qin, uint64_t cookie)
{
    (void)qin;
    (void)cookie;
}

static void qxl_update_area_complete(QXLInstance *qin, uint32_t surface_id, QXLRect *rects,
                                     uint32_t n)
{
    (void)qin;
    (void)surface_id;
    (void)rects;
    (void)n;
    out("{\"event\":\"qxl-unexpected\",\"fn\":\"update_area_complete\"}");
}

static void qxl_set_client_capabilities(QXLInstance *qin, uint8_t present, uint8_t *caps)
{
    (void)qin;
    (void)caps;
    out("{\"event\":\"qxl-client-caps\",\"present\":%u}", present);
}

static int qxl_client_monitors_config(QXLInstance *qin, VDAgentMonitorsConfig *mc)
{
    (void)qin;
    (void)mc;
    return 1;
}

static const QXLInterface qxl_interface = {
    .base = {
        .type = SPICE_INTERFACE_QXL,
        .description = "bench_host simple display",
        .major_version = SPICE_INTERFACE_QXL_MAJOR,
        .minor_version = SPICE_INTERFACE_QXL_MINOR,
    },
    .attached_worker = qxl_attached_worker,
    .set_compression_level = qxl_set_compression_level,
    .set_mm_time = NULL,
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
    IN_LIBRARY(spice_qxl_create_primary_surface(&qxl, 0, &surface));
    primary_live = 1;
}

static void drop_queued_updates(void)
{
    pthread_mutex_lock(&qxl_lock);
    Update *u = draw_head;
    draw_head = draw_tail = NULL;
    pthread_mutex_unlock(&qxl_lock);
    while (u) {
        Update *next = u->next;
        free(u->bitmap);
        free(u);
        u = next;
    }
}

/* CPU time of the whole process (every thread, ended ones too), to the
 * microsecond: /proc's figures count in 10 ms clock ticks, too coarse for a
 * scenario whose library work is a few milliseconds. */
static int64_t process_cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return -1;
    }
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

/* Called on the main thread only: main_cpu_us is that thread's CPU. Every
 * other thread is the library's (this host starts none). */
static void print_counts(const char *event)
{
    int64_t cpu_us = process_cpu_us();
    int64_t main_cpu_us = thread_cpu_us();
    pthread_mutex_lock(&qxl_lock);
    unsigned queued = 0;
    for (Update *u = draw_head; u; u = u->next) {
        queued++;
    }
    out("{\"event\":\"%s\",\"draw_made\":%" PRIu64 ",\"draw_sent\":%" PRIu64
        ",\"draw_released\":%" PRIu64 ",\"draw_queued\":%u,\"bad_releases\":%" PRIu64
        ",\"raw_bytes\":%" PRIu64 ",\"refresh_after_last_change_us\":%" PRId64
        ",\"cpu_us\":%" PRId64 ",\"main_cpu_us\":%" PRId64 ",\"library_main_us\":%" PRId64 "}",
        event, draw_made, draw_sent, draw_released, queued, bad_releases, bytes_made,
        tick_after_change_us, cpu_us, main_cpu_us, library_main_us);
    pthread_mutex_unlock(&qxl_lock);
}

/* ------------------------------------------------------------------------ */
/* Checksum                                                                 */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        }
        crc_table[n] = c;
    }
}

/* zlib's CRC-32 of the frame: packed rows, bytes B, G, R, 0 (the framebuffer
 * keeps the X byte at zero, so it is the framebuffer's bytes on little endian). */
static uint32_t frame_crc(void)
{
    uint32_t crc = 0xFFFFFFFFu;
    size_t n = (size_t)width * height;
    for (size_t i = 0; i < n; i++) {
        uint32_t px = fb[i] & 0x00FFFFFFu;
        for (int k = 0; k < 4; k++) {
            crc = crc_table[(crc ^ (px >> (8 * k))) & 0xFFu] ^ (crc >> 8);
        }
    }
    return ~crc;
}

/* ------------------------------------------------------------------------ */
/* Drawing                                                                  */

static inline int clamp255(int v)
{
    return v < 0 ? 0 : v > 255 ? 255 : v;
}

static inline uint32_t rgb(int r, int g, int b)
{
    return ((uint32_t)clamp255(r) << 16) | ((uint32_t)clamp255(g) << 8) | (uint32_t)clamp255(b);
}

static inline int ch_r(uint32_t c) { return (int)((c >> 16) & 0xFF); }
static inline int ch_g(uint32_t c) { return (int)((c >> 8) & 0xFF); }
static inline int ch_b(uint32_t c) { return (int)(c & 0xFF); }

/* a*(256-t)/256 + b*t/256 */
static inline uint32_t mix(uint32_t a, uint32_t b, int t)
{
    return rgb((ch_r(a) * (256 - t) + ch_r(b) * t) >> 8, (ch_g(a) * (256 - t) + ch_g(b) * t) >> 8,
               (ch_b(a) * (256 - t) + ch_b(b) * t) >> 8);
}

static uint32_t hash3(uint32_t x, uint32_t y, uint32_t seed)
{
    uint32_t h = x * 0x9E3779B1u ^ (y + 0x7F4A7C15u) * 0x85EBCA77u ^ seed * 0xC2B2AE3Du;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    h *= 0x297A2D39u;
    h ^= h >> 15;
    return h;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 33) % n;
}

static void fill(int x, int y, int w, int h, uint32_t c)
{
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > width ? width : x + w, y1 = y + h > height ? height : y + h;
    for (int yy = y0; yy < y1; yy++) {
        for (int xx = x0; xx < x1; xx++) {
            fb[yy * width + xx] = c;
        }
    }
}

/* Darkens a rectangle (window shadows). */
static void shade(int x, int y, int w, int h, int t)
{
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > width ? width : x + w, y1 = y + h > height ? height : y + h;
    for (int yy = y0; yy < y1; yy++) {
        for (int xx = x0; xx < x1; xx++) {
            fb[yy * width + xx] = mix(fb[yy * width + xx], 0, t);
        }
    }
}

static int glyph_on(char c, int gx, int gy)
{
    if (c < 32 || c > 126 || gx < 0 || gx >= FONT_W || gy < 0 || gy >= FONT_H) {
        return 0;
    }
    return font_glyphs[c - 32][gy * (FONT_W + 1) + gx] == '#';
}

#define CELL_W 6
#define CELL_H 12

/* One character cell (CELL_W x CELL_H, times `scale`) with a light smoothing
 * halo around the strokes, as anti-aliased text has. */
static void draw_char(int x, int y, char c, uint32_t fg, uint32_t bg, int scale)
{
    uint32_t soft_h = mix(bg, fg, 72), soft_v = mix(bg, fg, 36);
    for (int cy = 0; cy < CELL_H * scale; cy++) {
        int py = y + cy;
        if (py < 0 || py >= height) {
            continue;
        }
        for (int cx = 0; cx < CELL_W * scale; cx++) {
            int px = x + cx;
            if (px < 0 || px >= width) {
                continue;
            }
            /* Position in glyph space, scaled up by `scale`; the glyph sits at row 2. */
            int sx = cx, sy = cy - 2 * scale;
            uint32_t color = bg;
            if (glyph_on(c, sx / scale, sy / scale) && sx >= 0 && sy >= 0) {
                color = fg;
            } else if ((sx > 0 && glyph_on(c, (sx - 1) / scale, sy >= 0 ? sy / scale : -1)) ||
                       glyph_on(c, (sx + 1) / scale, sy >= 0 ? sy / scale : -1)) {
                color = soft_h;
            } else if ((sy > 0 && glyph_on(c, sx / scale, (sy - 1) / scale)) ||
                       (sy + 1 >= 0 && glyph_on(c, sx / scale, (sy + 1) / scale))) {
                color = soft_v;
            }
            fb[py * width + px] = color;
        }
    }
}

static int draw_text(int x, int y, const char *s, uint32_t fg, uint32_t bg, int scale)
{
    for (; *s; s++) {
        draw_char(x, y, *s, fg, bg, scale);
        x += CELL_W * scale;
    }
    return x;
}

/* Text over a background that is not flat: each cell's own pixels are the background. */
static void draw_text_over(int x, int y, const char *s, uint32_t fg)
{
    for (; *s; s++, x += CELL_W) {
        for (int gy = 0; gy < FONT_H; gy++) {
            for (int gx = 0; gx < FONT_W; gx++) {
                int px = x + gx, py = y + 2 + gy;
                if (px >= 0 && px < width && py >= 0 && py < height && glyph_on(*s, gx, gy)) {
                    fb[py * width + px] = fg;
                }
            }
        }
    }
}

/* ---- Desktop --------------------------------------------------------------- */

#define TASKBAR_H 32

static void draw_wallpaper(void)
{
    for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
            float fx = (float)x / (float)width, fy = (float)y / (float)height;
            float wave = sinf(fx * 5.1f + fy * 3.3f + 1.7f * sinf(fy * 6.0f)) * 0.5f + 0.5f;
            float glow = expf(-((fx - 0.7f) * (fx - 0.7f) + (fy - 0.35f) * (fy - 0.35f)) * 6.0f);
            int n = (int)(hash3((uint32_t)x, (uint32_t)y, 77) & 7u) - 3;
            int r = (int)(18 + 40 * fx + 60 * glow + 20 * wave) + n;
            int g = (int)(36 + 50 * fy + 45 * glow + 35 * wave) + n;
            int b = (int)(84 + 70 * (1.0f - fy) + 30 * glow + 40 * wave) + n;
            fb[y * width + x] = rgb(r, g, b);
        }
    }
}

static void draw_icon(int x, int y, uint32_t color, const char *label)
{
    for (int yy = 0; yy < 44; yy++) {
        for (int xx = 0; xx < 44; xx++) {
            int dx = xx < 6 ? 6 - xx : xx > 37 ? xx - 37 : 0;
            int dy = yy < 6 ? 6 - yy : yy > 37 ? yy - 37 : 0;
            if (dx * dx + dy * dy > 36) {
                continue; /* rounded corners */
            }
            fb[(y + yy) * width + x + 10 + xx] = mix(color, 0xFFFFFF, 60 - yy);
        }
    }
    int tx = x + 32 - (int)strlen(label) * CELL_W / 2;
    draw_text_over(tx + 1, y + 47, label, 0x000000);
    draw_text_over(tx, y + 46, label, 0xF0F0F0);
}

static void draw_clock(int second)
{
    char buf[16];
    int total = 9 * 3600 + 41 * 60 + second;
    snprintf(buf, sizeof(buf), "%02d:%02d:%02d", (total / 3600) % 24, (total / 60) % 60,
             total % 60);
    int w = 8 * CELL_W * 2;
    int x = width - w - 12, y = height - TASKBAR_H + 4;
    fill(x - 4, y, w + 8, 24, rgb(40, 42, 50));
    draw_text(x, y, buf, rgb(235, 235, 235), rgb(40, 42, 50), 2);
    mark_dirty(x - 4, y, w + 8, 24);
}

static void draw_taskbar(void)
{
    int y0 = height - TASKBAR_H;
    for (int y = y0; y < height; y++) {
        fill(0, y, width, 1, y == y0 ? rgb(70, 74, 86) : rgb(32 + (y - y0) / 4, 34, 40));
    }
    fill(6, y0 + 5, 64, 22, rgb(52, 101, 164));
    draw_text(18, y0 + 10, "Apps", 0xFFFFFF, rgb(52, 101, 164), 1);
    static const char *const tasks[] = {"Terminal", "Photos", "Files", "Editor", "Player"};
    for (int i = 0; i < 5; i++) {
        int x = 84 + i * 128;
        fill(x, y0 + 5, 120, 22, rgb(50, 53, 62));
        fill(x, y0 + 25, 120, 2, i == 0 ? rgb(90, 160, 240) : rgb(50, 53, 62));
        draw_text(x + 8, y0 + 10, tasks[i], rgb(220, 220, 220), rgb(50, 53, 62), 1);
    }
    draw_text(width - 220, y0 + 10, "Tue 14 May", rgb(200, 200, 200), rgb(32, 34, 40), 1);
    draw_clock(0);
}

static void draw_desktop(void)
{
    draw_wallpaper();
    static const char *const labels[] = {"Home", "Projects", "Photos", "Trash"};
    static const uint32_t colors[] = {0x3465A4, 0x4E9A06, 0xC4A000, 0x888A85};
    for (int i = 0; i < 4; i++) {
        draw_icon(12, 16 + i * 84, colors[i], labels[i]);
    }
    draw_taskbar();
}

/* A window frame with a title bar; returns nothing, the client area starts at
 * (x + 1, y + 25). */
static void draw_window(int x, int y, int w, int h, const char *title, uint32_t bg)
{
    shade(x + 6, y + 6, w, h, 90);
    fill(x, y, w, h, rgb(60, 60, 66));
    for (int yy = 1; yy < 25; yy++) {
        fill(x + 1, y + yy, w - 2, 1, rgb(228 - yy * 2, 228 - yy * 2, 232 - yy * 2));
    }
    draw_text_over(x + 10, y + 7, title, rgb(40, 40, 40));
    static const uint32_t buttons[] = {0xED6A5E, 0xF5BF4F, 0x61C554};
    for (int i = 0; i < 3; i++) {
        int cx = x + w - 18 - i * 20, cy = y + 12;
        for (int yy = -6; yy <= 6; yy++) {
            for (int xx = -6; xx <= 6; xx++) {
                int d = xx * xx + yy * yy;
                if (d <= 36) {
                    fb[(cy + yy) * width + cx + xx] =
                        d > 25 ? mix(buttons[i], rgb(220, 220, 224), 128) : buttons[i];
                }
            }
        }
    }
    fill(x + 1, y + 25, w - 2, h - 26, bg);
}

static const char *const editor_text[] = {
    "# Meeting notes",
    "",
    "- ship the display benchmark",
    "- compare CPU and bytes with",
    "  the C server, same host",
    "- photos: QUIC beats LZ?",
    "- terminal: scrolling could",
    "  use COPY_BITS",
    "",
    "TODO:",
    "  [x] primary surface",
    "  [ ] pixmap cache",
    "  [ ] GLZ dictionary",
    "",
    "Call Anna at 3pm re: demo",
};

static void draw_editor(int x, int y, int w, int h)
{
    draw_window(x, y, w, h, "notes.md - Editor", rgb(252, 252, 250));
    fill(x + 1, y + 25, 28, h - 26, rgb(238, 238, 236));
    int lines = (int)(sizeof(editor_text) / sizeof(editor_text[0]));
    for (int i = 0; i < lines && 30 + (i + 1) * 14 < h; i++) {
        char num[8];
        snprintf(num, sizeof(num), "%3d", i + 1);
        draw_text(x + 4, y + 30 + i * 14, num, rgb(150, 150, 150), rgb(238, 238, 236), 1);
        draw_text(x + 36, y + 30 + i * 14, editor_text[i], rgb(30, 30, 30), rgb(252, 252, 250), 1);
    }
}

static void draw_files(int x, int y, int w, int h)
{
    draw_window(x, y, w, h, "Files - ~/Pictures", rgb(246, 246, 246));
    fill(x + 1, y + 25, 120, h - 26, rgb(232, 232, 236));
    static const char *const places[] = {"Home", "Desktop", "Documents", "Downloads",
                                         "Music", "Pictures", "Videos", "Trash"};
    for (int i = 0; i < 8; i++) {
        uint32_t bg = i == 5 ? rgb(52, 101, 164) : rgb(232, 232, 236);
        fill(x + 1, y + 32 + i * 20, 120, 18, bg);
        draw_text(x + 12, y + 35 + i * 20, places[i], i == 5 ? 0xFFFFFF : rgb(40, 40, 40), bg, 1);
    }
    for (int i = 0; i < 12; i++) {
        int ix = x + 136 + (i % 4) * 84, iy = y + 36 + (i / 4) * 90;
        if (ix + 72 > x + w || iy + 80 > y + h) {
            continue;
        }
        for (int yy = 0; yy < 56; yy++) {
            for (int xx = 0; xx < 72; xx++) {
                uint32_t s = (uint32_t)i * 31 + 5;
                fb[(iy + yy) * width + ix + xx] =
                    rgb((int)(hash3(s, 1, 2) & 127) + xx, (int)(hash3(s, 3, 4) & 127) + yy,
                        (int)(hash3(s, 5, 6) & 127) + 60);
            }
        }
        char name[24];
        snprintf(name, sizeof(name), "IMG_%04d", 2310 + i);
        draw_text(ix + 6, iy + 60, name, rgb(40, 40, 40), rgb(246, 246, 246), 1);
    }
}

/* ---- (a) terminal -------------------------------------------------------- */

#define TERM_COLS 100
#define TERM_ROWS 40
static int term_x, term_y; /* top-left of the text area */
static const uint32_t term_bg = 0x1E1E1E;

enum { C_FG, C_GREEN, C_BLUE, C_YELLOW, C_GREY, C_RED, C_CYAN, C_N };
static const uint32_t term_palette[C_N] = {0xCCCCCC, 0x5FD75F, 0x6F9FEF, 0xE5C07B,
                                           0x8A8A8A, 0xE06C75, 0x56B6C2};

typedef struct {
    char text[TERM_COLS + 1];
    uint8_t color[TERM_COLS];
    int len;
} TermLine;

static void tl_add(TermLine *l, int color, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void tl_add(TermLine *l, int color, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for (const char *p = buf; *p && l->len < TERM_COLS; p++) {
        l->text[l->len] = *p;
        l->color[l->len] = (uint8_t)color;
        l->len++;
    }
    l->text[l->len] = 0;
}

static const char *const crates[] = {
    "serde",        "tokio",     "mio",        "libc",         "syn",       "quote",
    "proc-macro2",  "regex",     "memchr",     "aho-corasick", "rand",      "rand_core",
    "getrandom",    "bytes",     "futures",    "hashbrown",    "log",       "tracing",
    "clap",         "anyhow",    "thiserror",  "rsa",          "sha1",      "num-bigint",
    "zeroize",      "cfg-if",    "once_cell",  "smallvec",     "itoa",      "ryu",
    "serde_json",   "bitflags",  "parking_lot", "crossbeam",   "spice-proto", "spice-server"};
static const char *const words[] = {
    "display", "channel", "surface", "region", "cursor", "worker", "encoder", "cache",
    "stream",  "client",  "link",    "ticket", "window", "frame",  "buffer",  "palette"};
static const char *const exts[] = {"rs", "c", "h", "toml", "md", "png", "txt", "json"};
static const char *const kmsgs[] = {
    "usb 1-2: new high-speed USB device number %d using xhci_hcd",
    "e1000e 0000:00:19.0 eth0: NIC Link is Up 1000 Mbps Full Duplex",
    "EXT4-fs (vda%d): mounted filesystem with ordered data mode",
    "audit: type=1400 apparmor=\"STATUS\" operation=\"profile_load\" pid=%d",
    "input: QEMU USB Tablet as /devices/pci0000:00/usb1/1-1/input/input%d",
    "virtio_net virtio%d eth0: renamed from enp0s3",
    "systemd[1]: Started Journal Service (pid %d).",
    "qxl 0000:00:02.0: fb%d: qxldrmfb frame buffer device"};
static const char *const cmds[] = {"cargo build --release", "ls -l", "git log --oneline",
                                   "make -j2",              "dmesg | tail", "cargo test"};

static int term_lines_made;

static void term_next_line(TermLine *l)
{
    memset(l, 0, sizeof(*l));
    int kind = (int)rnd(20);
    term_lines_made++;
    if (kind < 7) {
        tl_add(l, C_GREEN, "   Compiling ");
        tl_add(l, C_FG, "%s v%u.%u.%u", crates[rnd(sizeof(crates) / sizeof(crates[0]))], rnd(3),
               rnd(40), rnd(20));
        if (rnd(3) == 0) {
            tl_add(l, C_FG, " (/home/user/src/%s)", words[rnd(16)]);
        }
    } else if (kind < 10) {
        unsigned t = 1000 + (unsigned)term_lines_made * 37;
        tl_add(l, C_GREEN, "[%5u.%06u] ", t / 1000, (t % 1000) * 997 + rnd(997));
        tl_add(l, C_FG, kmsgs[rnd(8)], (int)rnd(9000) + 1);
    } else if (kind < 14) {
        int dir = rnd(4) == 0;
        tl_add(l, C_FG, "%s %2u user user %8u May %2u %02u:%02u ", dir ? "drwxr-xr-x" : "-rw-r--r--",
               dir ? 2 + rnd(6) : 1, dir ? 4096 : rnd(2000000), 1 + rnd(28), rnd(24), rnd(60));
        if (dir) {
            tl_add(l, C_BLUE, "%s_%s", words[rnd(16)], words[rnd(16)]);
        } else {
            tl_add(l, C_FG, "%s_%s.%s", words[rnd(16)], words[rnd(16)], exts[rnd(8)]);
        }
    } else if (kind < 17) {
        tl_add(l, C_FG, "test %s::%s::%s_%s ... ", words[rnd(16)], words[rnd(16)], words[rnd(16)],
               words[rnd(16)]);
        if (rnd(12) == 0) {
            tl_add(l, C_RED, "FAILED");
        } else {
            tl_add(l, C_GREEN, "ok");
        }
    } else if (kind < 18) {
        tl_add(l, C_GREEN, "user@vm");
        tl_add(l, C_FG, ":");
        tl_add(l, C_BLUE, "~/src/%s", crates[rnd(sizeof(crates) / sizeof(crates[0]))]);
        tl_add(l, C_FG, "$ %s", cmds[rnd(6)]);
    } else if (kind < 19) {
        tl_add(l, C_YELLOW, "warning");
        tl_add(l, C_FG, ": unused variable: `%s`", words[rnd(16)]);
    } else {
        tl_add(l, C_CYAN, "  --> ");
        tl_add(l, C_FG, "src/%s/%s.rs:%u:%u", words[rnd(16)], words[rnd(16)], 1 + rnd(900),
               1 + rnd(80));
    }
}

static void term_draw_line(int row, const TermLine *l)
{
    int y = term_y + row * CELL_H;
    fill(term_x, y, TERM_COLS * CELL_W, CELL_H, term_bg);
    for (int i = 0; i < l->len; i++) {
        draw_char(term_x + i * CELL_W, y, l->text[i], term_palette[l->color[i]], term_bg, 1);
    }
}

static void terminal_init(void)
{
    draw_desktop();
    draw_editor(700, 90, 300, 420);
    int w = TERM_COLS * CELL_W + 10, h = TERM_ROWS * CELL_H + 32;
    int x = 110, y = 50;
    draw_window(x, y, w, h, "user@vm: ~/src/spice-rs - Terminal", term_bg);
    term_x = x + 5;
    term_y = y + 28;
    for (int row = 0; row < TERM_ROWS; row++) {
        TermLine l;
        term_next_line(&l);
        term_draw_line(row, &l);
    }
}

/* One new line of output: the text scrolls up by one row. */
static void terminal_frame(int frame)
{
    (void)frame;
    int tw = TERM_COLS * CELL_W;
    for (int y = term_y; y < term_y + (TERM_ROWS - 1) * CELL_H; y++) {
        memmove(&fb[y * width + term_x], &fb[(y + CELL_H) * width + term_x], (size_t)tw * 4);
    }
    TermLine l;
    term_next_line(&l);
    term_draw_line(TERM_ROWS - 1, &l);
    mark_dirty(term_x, term_y, tw, TERM_ROWS * CELL_H);
}

/* ---- (b) slideshow ------------------------------------------------------- */

#define PHOTO_W 800
#define PHOTO_H 600
static int photo_x, photo_y, viewer_x, viewer_y, viewer_w, viewer_h;
static int switch_every = 15;
static int photos_total;

static float frand(uint32_t seed, uint32_t k)
{
    return (float)(hash3(seed, k, 991) & 0xFFFFu) / 65535.0f;
}

static float vnoise(float x, float y, uint32_t seed)
{
    float fx0 = floorf(x), fy0 = floorf(y);
    int xi = (int)fx0, yi = (int)fy0;
    float fx = x - fx0, fy = y - fy0;
    float u = fx * fx * (3 - 2 * fx), v = fy * fy * (3 - 2 * fy);
#define H(i, j) ((float)(hash3((uint32_t)(xi + (i)), (uint32_t)(yi + (j)), seed) & 0xFFFFu) / 65535.0f)
    float a = H(0, 0), b = H(1, 0), c = H(0, 1), d = H(1, 1);
#undef H
    return (a + (b - a) * u) * (1 - v) + (c + (d - c) * u) * v;
}

static float fbm(float x, float y, uint32_t seed, int octaves)
{
    float sum = 0, amp = 0.5f, norm = 0;
    for (int o = 0; o < octaves; o++) {
        sum += amp * vnoise(x, y, seed + (uint32_t)o * 101u);
        norm += amp;
        amp *= 0.5f;
        x *= 2.03f;
        y *= 2.03f;
    }
    return sum / norm;
}

static float smooth(float e0, float e1, float x)
{
    float t = (x - e0) / (e1 - e0);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return t * t * (3 - 2 * t);
}

/* A landscape "photo": sky with sun and clouds, far mountains, near hills with
 * grass texture, and sensor noise. Different for every k. */
static void render_photo(int k, int ox, int oy)
{
    uint32_t seed = (uint32_t)k * 7919u + 13u;
    static const float skies[4][6] = {
        {40, 70, 140, 250, 180, 120},  /* dawn */
        {50, 110, 200, 190, 220, 245}, /* day */
        {25, 20, 60, 235, 110, 80},    /* dusk */
        {90, 100, 110, 200, 200, 205}, /* overcast */
    };
    const float *sky = skies[k % 4];
    float sun_x = PHOTO_W * (0.15f + 0.7f * frand(seed, 1));
    float sun_y = PHOTO_H * (0.1f + 0.25f * frand(seed, 2));
    float horizon = PHOTO_H * (0.42f + 0.18f * frand(seed, 3));
    float hue = frand(seed, 4);
    float mountain[PHOTO_W], hills[PHOTO_W];
    for (int x = 0; x < PHOTO_W; x++) {
        mountain[x] = horizon - 40 - 130 * fbm((float)x / 160.0f, 0.5f, seed + 7, 4);
        hills[x] = horizon + 30 + 60 * fbm((float)x / 220.0f, 3.5f, seed + 9, 3);
    }
    for (int y = 0; y < PHOTO_H; y++) {
        uint32_t *row = &fb[(oy + y) * width + ox];
        float fy = (float)y;
        for (int x = 0; x < PHOTO_W; x++) {
            float fx = (float)x;
            float r, g, b;
            if (fy < mountain[x]) {
                float t = fy / horizon;
                r = sky[0] + (sky[3] - sky[0]) * t;
                g = sky[1] + (sky[4] - sky[1]) * t;
                b = sky[2] + (sky[5] - sky[2]) * t;
                float dx = fx - sun_x, dy = fy - sun_y;
                float d2 = dx * dx + dy * dy;
                float glow = 1.0f / (1.0f + d2 / 900.0f);
                r += 120 * glow;
                g += 100 * glow;
                b += 60 * glow;
                if (d2 < 400) {
                    r = 255;
                    g = 250;
                    b = 225;
                }
                float cloud = smooth(0.5f, 0.8f, fbm(fx / 90.0f, fy / 30.0f, seed + 3, 4));
                r += (235 - r) * cloud * 0.8f;
                g += (235 - g) * cloud * 0.8f;
                b += (240 - b) * cloud * 0.8f;
            } else if (fy < hills[x]) {
                float shade_v = fbm(fx / 40.0f, fy / 25.0f, seed + 5, 3);
                float haze = smooth(mountain[x], hills[x], fy);
                r = 70 + 60 * shade_v + 20 * hue - 30 * haze;
                g = 85 + 50 * shade_v + 10 * haze;
                b = 120 + 40 * shade_v - 30 * haze;
            } else {
                float tex = fbm(fx / 6.0f, fy / 3.0f, seed + 11, 2);
                float large = fbm(fx / 120.0f, fy / 60.0f, seed + 13, 2);
                float depth = (fy - horizon) / (PHOTO_H - horizon);
                r = 50 + 70 * large + 40 * tex + 60 * hue * depth;
                g = 90 + 80 * large + 50 * tex - 20 * depth;
                b = 30 + 30 * large + 20 * tex;
            }
            int n = (int)(hash3((uint32_t)x, (uint32_t)y, seed) & 7u) - 3;
            row[x] = rgb((int)r + n, (int)g + n, (int)b + n);
        }
    }
}

static void slideshow_caption(int k)
{
    char buf[96];
    snprintf(buf, sizeof(buf), "IMG_%04d.JPG   %d of %d   800 x 600   100%%", 2310 + k, k + 1,
             photos_total);
    int y = viewer_y + viewer_h - 22;
    fill(viewer_x + 1, y, viewer_w - 2, 21, rgb(45, 45, 48));
    draw_text(viewer_x + 12, y + 4, buf, rgb(210, 210, 210), rgb(45, 45, 48), 1);
    mark_dirty(viewer_x + 1, y, viewer_w - 2, 21);
}

static void slideshow_init(int frames)
{
    draw_desktop();
    viewer_w = PHOTO_W + 144;
    viewer_h = PHOTO_H + 26 + 48 + 22;
    viewer_x = (width - viewer_w) / 2;
    viewer_y = 12;
    if (viewer_x < 0) viewer_x = 0;
    draw_window(viewer_x, viewer_y, viewer_w, viewer_h, "Photos - IMG_2310.JPG", rgb(30, 30, 32));
    photo_x = viewer_x + (viewer_w - PHOTO_W) / 2;
    photo_y = viewer_y + 26 + 24;
    photos_total = frames / switch_every + 1;
    render_photo(0, photo_x, photo_y);
    slideshow_caption(0);
}

static void slideshow_frame(int frame)
{
    if (frame % switch_every != 0) {
        return; /* the photo stays up: nothing changes */
    }
    int k = frame / switch_every;
    render_photo(k, photo_x, photo_y);
    mark_dirty(photo_x, photo_y, PHOTO_W, PHOTO_H);
    slideshow_caption(k);
}

/* ---- (c) video ----------------------------------------------------------- */

#define VIDEO_W 320
#define VIDEO_H 240
static int video_x, video_y, player_x, player_y, player_w;
/* --dump-video DIR: each video frame's picture goes to DIR/NNNN.raw (packed
 * rows of B, G, R, 0), so the benchmark can tell what a lossy client shows. */
static const char *video_dump_dir;
static int write_file(const char *path, const void *data, size_t n);

static void video_dump(int frame)
{
    static uint32_t rows[VIDEO_W * VIDEO_H];
    char path[4096];
    for (int y = 0; y < VIDEO_H; y++) {
        for (int x = 0; x < VIDEO_W; x++) {
            rows[y * VIDEO_W + x] = fb[(video_y + y) * width + video_x + x] & 0xFFFFFFu;
        }
    }
    snprintf(path, sizeof(path), "%s/%04d.raw", video_dump_dir, frame);
    if (write_file(path, rows, sizeof(rows)) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
    }
}
static float sin_table[1024];
static uint32_t video_palette[256];

static void video_init(void)
{
    draw_desktop();
    draw_editor(640, 60, 340, 470);
    draw_files(90, 330, 520, 380);
    for (int i = 0; i < 1024; i++) {
        sin_table[i] = sinf((float)i * 6.2831853f / 1024.0f);
    }
    for (int i = 0; i < 256; i++) {
        float t = (float)i / 256.0f * 6.2831853f;
        video_palette[i] = rgb((int)(128 + 100 * sinf(t)), (int)(110 + 90 * sinf(t + 2.1f)),
                               (int)(120 + 110 * sinf(t + 4.2f)));
    }
    player_w = VIDEO_W + 16;
    int player_h = VIDEO_H + 26 + 8 + 36;
    player_x = 260;
    player_y = 120;
    draw_window(player_x, player_y, player_w, player_h, "Player - sunset.mkv", rgb(20, 20, 20));
    video_x = player_x + 8;
    video_y = player_y + 30;
}

#define S(i) sin_table[(i) & 1023]

static void video_frame(int frame)
{
    int t = frame;
    float bx = VIDEO_W * (0.5f + 0.35f * S(t * 7)), by = VIDEO_H * (0.5f + 0.3f * S(t * 11 + 256));
    for (int y = 0; y < VIDEO_H; y++) {
        uint32_t *row = &fb[(video_y + y) * width + video_x];
        for (int x = 0; x < VIDEO_W; x++) {
            float v = S(x * 3 + t * 9) + S(y * 4 - t * 6) + S((x + y) * 2 + t * 5) +
                      S((int)(sqrtf((float)((x - 160) * (x - 160) + (y - 120) * (y - 120))) * 6) -
                        t * 12);
            int idx = (int)((v + 4.0f) * 32.0f) & 255;
            uint32_t c = video_palette[idx];
            float dx = (float)x - bx, dy = (float)y - by;
            float d2 = dx * dx + dy * dy;
            if (d2 < 1600) {
                c = mix(c, 0xFFF4D0, (int)(200 * (1.0f - d2 / 1600.0f)));
            }
            int n = (int)(hash3((uint32_t)x, (uint32_t)y, (uint32_t)t) & 3u) - 1;
            row[x] = rgb(ch_r(c) + n, ch_g(c) + n, ch_b(c) + n);
        }
    }
    mark_dirty(video_x, video_y, VIDEO_W, VIDEO_H);
    if (video_dump_dir) {
        video_dump(frame);
    }
    /* Controls: progress bar every frame, time every second. */
    int cy = video_y + VIDEO_H + 8;
    int pw = VIDEO_W - 110;
    fill(video_x, cy + 8, pw, 4, rgb(70, 70, 70));
    fill(video_x, cy + 8, pw * (frame % 900) / 900, 4, rgb(230, 80, 60));
    mark_dirty(video_x, cy + 8, pw, 4);
    if (frame % 30 == 0) {
        char buf[32];
        int s = 125 + frame / 30;
        snprintf(buf, sizeof(buf), "%02d:%02d / 07:30", s / 60, s % 60);
        draw_text(video_x + pw + 8, cy + 2, buf, rgb(220, 220, 220), rgb(20, 20, 20), 1);
        mark_dirty(video_x + pw + 8, cy + 2, 100, CELL_H);
    }
}

/* ---- (d) idle desktop with a clock --------------------------------------- */

static void clock_init(void)
{
    draw_desktop();
    draw_files(110, 40, 520, 400);
    draw_editor(560, 200, 360, 420);
}

static void clock_frame(int frame)
{
    draw_clock(frame);
}

/* ---- Scenario driver ------------------------------------------------------ */

typedef struct {
    const char *name;
    int period_ms;
    int default_frames;
} Scenario;

static const Scenario scenarios[] = {
    {"terminal", 40, 250},
    {"slideshow", 100, 105},
    {"video", 33, 300},
    {"clock", 1000, 10},
};

static const Scenario *scenario;
static int frames_total = -1;
static int frame_no;
static int64_t start_ms;
static SpiceTimer *scenario_timer;
static int started, finished;

static void scenario_init(void)
{
    if (!strcmp(scenario->name, "terminal")) {
        terminal_init();
    } else if (!strcmp(scenario->name, "slideshow")) {
        slideshow_init(frames_total);
    } else if (!strcmp(scenario->name, "video")) {
        video_init();
        video_frame(0);
    } else {
        clock_init();
    }
    mark_dirty(0, 0, width, height);
}

static void scenario_tick(void *opaque)
{
    (void)opaque;
    if (finished || quitting) {
        return;
    }
    frame_no++;
    uint64_t marks = dirty_marks;
    if (!strcmp(scenario->name, "terminal")) {
        terminal_frame(frame_no);
    } else if (!strcmp(scenario->name, "slideshow")) {
        slideshow_frame(frame_no);
    } else if (!strcmp(scenario->name, "video")) {
        video_frame(frame_no);
    } else {
        clock_frame(frame_no);
    }
    if (dirty_marks != marks) {
        last_change_us = now_us();
    }
    if (frame_no >= frames_total) {
        int64_t t = now_us();
        finished = 1;
        /* t_us: when the guest finished drawing its last change. */
        out("{\"event\":\"last-update\",\"t_us\":%" PRId64 ",\"frames\":%d,\"crc\":%u,"
            "\"elapsed_ms\":%" PRId64 "}",
            last_change_us, frame_no, frame_crc(), t / 1000 - start_ms);
        return;
    }
    /* Keep the frame rate: the next frame is due at start + n * period. */
    int64_t due = start_ms + (int64_t)(frame_no + 1) * scenario->period_ms;
    int64_t now = now_ms();
    core_timer_start(scenario_timer, (uint32_t)(due > now ? due - now : 0));
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
    if (scenario_timer) {
        core_timer_remove(scenario_timer);
        scenario_timer = NULL;
    }
    if (refresh_timer) {
        core_timer_remove(refresh_timer);
        refresh_timer = NULL;
    }
    drop_queued_updates();
    if (primary_live) {
        IN_LIBRARY(spice_qxl_destroy_primary_surface(&qxl, 0));
        primary_live = 0;
    }
    print_counts("counts");
    spice_server_remove_interface(&qxl.base);
    spice_server_remove_interface(&tablet.base);
    spice_server_remove_interface(&mouse.base);
    spice_server_remove_interface(&kbd.base);
    spice_server_destroy(server);
    server = NULL;
}

static void command(char *line)
{
    char name[32] = "";
    char path[4096] = "";
    int ok = 1;
    if (sscanf(line, "%31s", name) != 1) {
        return;
    }
    if (!strcmp(name, "start")) {
        if (!started) {
            started = 1;
            start_ms = now_ms();
            scenario_timer = core_timer_add(scenario_tick, NULL);
            core_timer_start(scenario_timer, (uint32_t)scenario->period_ms);
            out("{\"event\":\"started\",\"t_us\":%" PRId64 "}", start_ms * 1000);
        } else {
            ok = 0;
        }
    } else if (!strcmp(name, "stats")) {
        print_counts("counts");
    } else if (!strcmp(name, "crc")) {
        out("{\"event\":\"crc\",\"crc\":%u,\"width\":%d,\"height\":%d}", frame_crc(), width, height);
    } else if (!strcmp(name, "dump")) {
        ok = sscanf(line, "%*s %4095s", path) == 1 &&
             write_file(path, fb, (size_t)width * height * 4) == 0;
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
            if (due->func == scenario_tick || due->func == refresh) {
                due->func(due->opaque);
            } else {
                IN_LIBRARY(due->func(due->opaque));
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

        for (size_t k = 2; k < n && !quitting; k++) {
            SpiceWatch *w = snap[k];
            short re = fds[k].revents;
            if (!re || fds[k].fd < 0) {
                continue;
            }
            if (!w->removed && (w->mask & SPICE_WATCH_EVENT_READ) &&
                (re & (POLLIN | POLLHUP | POLLERR))) {
                IN_LIBRARY(w->func(w->fd, SPICE_WATCH_EVENT_READ, w->opaque));
            }
            if (!w->removed && (w->mask & SPICE_WATCH_EVENT_WRITE) && (re & (POLLOUT | POLLERR))) {
                IN_LIBRARY(w->func(w->fd, SPICE_WATCH_EVENT_WRITE, w->opaque));
            }
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
                in_len = 0;
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
        if (strstr(line, "libspice-server")) {
            char *p = strchr(line, '/');
            if (p) {
                p[strcspn(p, "\n")] = 0;
                snprintf(lib, sizeof(lib), "%s", p);
                break;
            }
        }
    }
    if (maps) {
        fclose(maps);
    }
    /* Library paths never hold quotes or backslashes here; keep the JSON valid anyway. */
    for (char *p = lib; *p; p++) {
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
            *p = '?';
        }
    }
    out("{\"event\":\"library\",\"path\":\"%s\"}", lib);
}

static int parse_choice(const char *value, const char *const *names, const int *values, int n,
                        int *result)
{
    for (int i = 0; i < n; i++) {
        if (!strcmp(value, names[i])) {
            *result = values[i];
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int port = -1;
    const char *scenario_name = NULL;
    int compression = SPICE_IMAGE_COMPRESSION_AUTO_GLZ;
    int jpeg = SPICE_WAN_COMPRESSION_NEVER;
    int zlib_glz = SPICE_WAN_COMPRESSION_AUTO;
    int streaming = SPICE_STREAM_VIDEO_OFF;
    const char *video_codecs = NULL;
    static const char *const comp_names[] = {"off", "auto_glz", "auto_lz", "quic",
                                             "glz", "lz",       "lz4"};
    static const int comp_values[] = {SPICE_IMAGE_COMPRESSION_OFF,  SPICE_IMAGE_COMPRESSION_AUTO_GLZ,
                                      SPICE_IMAGE_COMPRESSION_AUTO_LZ, SPICE_IMAGE_COMPRESSION_QUIC,
                                      SPICE_IMAGE_COMPRESSION_GLZ,  SPICE_IMAGE_COMPRESSION_LZ,
                                      SPICE_IMAGE_COMPRESSION_LZ4};
    static const char *const wan_names[] = {"never", "auto", "always"};
    static const int wan_values[] = {SPICE_WAN_COMPRESSION_NEVER, SPICE_WAN_COMPRESSION_AUTO,
                                     SPICE_WAN_COMPRESSION_ALWAYS};
    static const char *const stream_names[] = {"off", "all", "filter"};
    static const int stream_values[] = {SPICE_STREAM_VIDEO_OFF, SPICE_STREAM_VIDEO_ALL,
                                        SPICE_STREAM_VIDEO_FILTER};

    for (int i = 1; i + 1 < argc; i += 2) {
        const char *opt = argv[i], *val = argv[i + 1];
        int ok = 1;
        if (!strcmp(opt, "--port")) {
            port = atoi(val);
        } else if (!strcmp(opt, "--scenario")) {
            scenario_name = val;
        } else if (!strcmp(opt, "--frames")) {
            frames_total = atoi(val);
        } else if (!strcmp(opt, "--width")) {
            width = atoi(val);
        } else if (!strcmp(opt, "--height")) {
            height = atoi(val);
        } else if (!strcmp(opt, "--switch-every")) {
            switch_every = atoi(val);
        } else if (!strcmp(opt, "--compression")) {
            ok = parse_choice(val, comp_names, comp_values, 7, &compression);
        } else if (!strcmp(opt, "--jpeg")) {
            ok = parse_choice(val, wan_names, wan_values, 3, &jpeg);
        } else if (!strcmp(opt, "--zlib-glz")) {
            ok = parse_choice(val, wan_names, wan_values, 3, &zlib_glz);
        } else if (!strcmp(opt, "--streaming")) {
            ok = parse_choice(val, stream_names, stream_values, 3, &streaming);
        } else if (!strcmp(opt, "--video-codecs")) {
            video_codecs = val;
        } else if (!strcmp(opt, "--dump-video")) {
            video_dump_dir = val;
        } else if (!strcmp(opt, "--damage")) {
            /* strips: QEMU's simple display; tiles: 32x32 tile diff, merged */
            ok = !strcmp(val, "strips") || !strcmp(val, "tiles");
            damage_tiles = !strcmp(val, "tiles");
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "bad option %s %s\n", opt, val);
            return 2;
        }
    }
    for (size_t i = 0; scenario_name && i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        if (!strcmp(scenario_name, scenarios[i].name)) {
            scenario = &scenarios[i];
        }
    }
    if (port <= 0 || !scenario || width < 1024 || height < 768 || switch_every <= 0) {
        fprintf(stderr, "usage: bench_host --port N --scenario terminal|slideshow|video|clock "
                        "[--frames N] [--width W>=1024] [--height H>=768] [--switch-every N] "
                        "[--compression off|auto_glz|auto_lz|quic|glz|lz|lz4] "
                        "[--jpeg never|auto|always] [--zlib-glz never|auto|always] "
                        "[--streaming off|all|filter] [--damage strips|tiles] "
                        "[--video-codecs LIST] [--dump-video DIR]\n");
        return 2;
    }
    if (frames_total <= 0) {
        frames_total = scenario->default_frames;
    }
    main_thread = pthread_self();
    crc_init();
    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        perror("pipe2");
        return 2;
    }

    print_loaded_library();

    /* The library's set-up is its CPU too (the host's own drawing of the
     * first frame, scenario_init, is not). */
    int64_t setup_from = thread_cpu_us();
    server = spice_server_new();
    if (!server) {
        out("{\"event\":\"fatal\",\"what\":\"spice_server_new\"}");
        return 1;
    }
    spice_server_set_port(server, port);
    spice_server_set_addr(server, "127.0.0.1", 0);
    spice_server_set_noauth(server);
    spice_server_set_image_compression(server, (SpiceImageCompression)compression);
    spice_server_set_jpeg_compression(server, (spice_wan_compression_t)jpeg);
    spice_server_set_zlib_glz_compression(server, (spice_wan_compression_t)zlib_glz);
    spice_server_set_streaming_video(server, streaming);
    if (video_codecs && spice_server_set_video_codecs(server, video_codecs) != 0) {
        out("{\"event\":\"fatal\",\"what\":\"spice_server_set_video_codecs\"}");
        return 1;
    }
    spice_server_set_agent_mouse(server, 1);
    spice_server_set_name(server, "bench_host");
    if (spice_server_init(server, &core) != 0) {
        out("{\"event\":\"fatal\",\"what\":\"spice_server_init\"}");
        return 1;
    }

    spice_server_add_interface(server, &kbd.base);
    spice_server_add_interface(server, &mouse.base);
    spice_server_add_interface(server, &tablet.base);
    if (spice_server_add_interface(server, &qxl.base) != 0) {
        out("{\"event\":\"fatal\",\"what\":\"add qxl\"}");
        return 1;
    }
    spice_qxl_set_device_info(&qxl, "pci/0000/02.0", 0, 1);

    QXLDevMemSlot slot;
    memset(&slot, 0, sizeof(slot));
    slot.slot_group_id = MEMSLOT_GROUP_HOST;
    slot.slot_id = 0;
    slot.generation = 0;
    slot.virt_start = 0;
    slot.virt_end = ~(uintptr_t)0;
    slot.addr_delta = 0;
    spice_qxl_add_memslot(&qxl, &slot);
    library_main_us += thread_cpu_us() - setup_from;

    create_primary();
    scenario_init();
    IN_LIBRARY(spice_server_vm_start(server));

    refresh_timer = core_timer_add(refresh, NULL);
    core_timer_start(refresh_timer, 0);

    /* video: where the player's picture is (0 0 0 0 for other scenarios). */
    int has_video = !strcmp(scenario->name, "video");
    out("{\"event\":\"ready\",\"port\":%d,\"scenario\":\"%s\",\"frames\":%d,\"period_ms\":%d,"
        "\"width\":%d,\"height\":%d,\"crc\":%u,\"video\":[%d,%d,%d,%d]}",
        port, scenario->name, frames_total, scenario->period_ms, width, height, frame_crc(),
        has_video ? video_x : 0, has_video ? video_y : 0, has_video ? VIDEO_W : 0,
        has_video ? VIDEO_H : 0);
    run_loop();

    /* The server is gone; commands it never released are left to the OS. */
    out("{\"event\":\"exit\"}");
    return 0;
}
