/*
 * SPDX-License-Identifier: MIT OR Apache-2.0
 *
 * scene.c: a deterministic scene of QXL drawing in native mode, for comparing
 * what two server libraries leave in guest memory.
 *
 * The device works as QEMU's qxl does for a guest driver: a buffer plays guest
 * RAM, reached through memslot SCENE_SLOT of group SCENE_GROUP, and every
 * command, image, clip list and surface lives in it at guest-physical
 * addresses. A seed drives everything: the primary (32-bit xRGB, bottom-up)
 * and off-screen surfaces in every format the device takes, created with and
 * without QXL_SURF_FLAG_KEEP_DATA over memory that holds a pattern, then a
 * long run of drawables: fills (solid, ROP descriptors, clip rectangles,
 * 1-bit masks, pattern brushes), copy-bits in every direction, copies from
 * bitmaps and from other surfaces at the same size and scaled (NEAREST),
 * blackness, whiteness, invers, opaque, blend, ROP3, transparent, alpha
 * blends, Render composites (operators, filters, repeats, transforms, masks
 * with component alpha), 1- and 4-bit text over backgrounds, and strokes
 * (lines, Béziers, axis-aligned dashes). With SCENE_TRACE set in its
 * environment the host prints each drawable it makes on stderr.
 *
 * Commands (host.c passes every stdin line whose name starts with scene_):
 *   scene_start SEED N KINDS DIR  memslot, primary, surfaces, N drawables
 *                                 (KINDS: bit mask of the op kinds below,
 *                                 0 = all), queued on the ring; surface
 *                                 memory is dumped into DIR
 *   scene_update                  update_area of one part of surface 1, then
 *                                 of each whole surface (sync, and async
 *                                 for odd ids); dumps "partial" and "update"
 *   scene_more N                  N more drawables, then a sync update_area
 *                                 of one pixel so the ring is taken
 *   scene_flush PHASE             flush_surfaces_async, then dumps every
 *                                 surface as PHASE
 *   scene_loadvm                  what QEMU's loadvm does: destroy_surfaces,
 *                                 the primary again over its memory, the
 *                                 off-screen creates replayed through
 *                                 loadvm_commands (the VM stopped)
 *   scene_update_all PHASE        update_area of each whole surface, dumped
 *   scene_resets                  reset_image_cache, reset_cursor, oom
 *   scene_dump PHASE              dumps every surface as it is
 *   scene_end                     destroys the off-screen surfaces and the
 *                                 primary, prints "scene-counts"
 * A dump of surface S in phase P is DIR/P-S.raw: its guest memory from the
 * lowest address, |stride| * height bytes, announced by a "scene-surface"
 * event (format, size, stride, FNV-1a of the pixel bytes).
 *
 * Written for the spice-rs test suite.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scene.h"

/* Address layout of host.c's get_init_info: 8 slot id bits, 8 generation bits. */
#define SLOT_SHIFT 56
#define GEN_SHIFT 48
#define SCENE_SLOT 1
#define SCENE_GEN 3
/* Where the RAM starts in guest-physical space (never 0: 0 means "none"). */
#define GUEST_BASE 0x40000000ull
#define RAM_SIZE (64u << 20)
#define MAX_CMDS 16384
#define N_SURFACES 8
#define PRIMARY_W 320
#define PRIMARY_H 240

/* Op kinds (bits of KINDS). */
enum {
    K_FILL,         /* solid OP_PUT, with and without clip rectangles */
    K_FILL_ROP,     /* solid brush through ROP descriptors */
    K_FILL_MASK,    /* 1-bit mask, with and without INVERS */
    K_FILL_PATTERN, /* pattern brush (32-bit bitmap tile) */
    K_COPY_BITS,    /* overlapping moves in every direction */
    K_COPY,         /* 32-bit bitmap, same size, ROP descriptors, masks, clips */
    K_COPY_SCALED,  /* 32-bit bitmap scaled with NEAREST */
    K_COPY_SURF,    /* from another surface, same size */
    K_COPY_SURF_SCALED, /* from another surface, scaled with NEAREST */
    K_BWI,          /* blackness, whiteness, invers */
    K_OPAQUE,       /* bitmap then brush, ROP descriptors */
    K_BLEND,        /* QXL_DRAW_BLEND */
    K_ROP3,         /* ROP3 codes with a solid brush */
    K_TRANSPARENT,  /* colour-keyed copy */
    K_ALPHA_BLEND,  /* constant alpha over, same size and scaled */
    K_COMPOSITE,    /* Render composites: operators, filters, repeats, masks */
    K_TEXT,         /* raster glyphs (1 and 4 bits) over a background */
    K_STROKE,       /* zero-width paths: lines, Béziers, axis-aligned dashes */
    K_COUNT
};
static const char *const kind_names[K_COUNT] = {
    "fill", "fill_rop", "fill_mask", "fill_pattern", "copy_bits", "copy",
    "copy_scaled", "copy_surface", "copy_surface_scaled", "bwi", "opaque",
    "blend", "rop3", "transparent", "alpha_blend", "composite", "text", "stroke",
};

typedef struct {
    int live;
    uint32_t format;
    int w, h, bpp;
    int32_t stride;
    uint8_t *mem; /* lowest byte */
    size_t bytes;
} Surf;

typedef struct {
    QXLCommandExt ext;
    int released;
} SceneCmd;

static pthread_mutex_t scene_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t scene_cond = PTHREAD_COND_INITIALIZER;
static SceneCmd cmds[MAX_CMDS];
static unsigned cmds_made, cmds_sent, cmds_released, cmds_double, cmds_bad;
static uint64_t waiting_cookie, completed_cookie;

static QXLInstance *scene_qxl;
static int active;
static uint8_t *ram;
static size_t ram_used;
static Surf surf[N_SURFACES];
static char dir[2048];
static uint64_t rng;
static unsigned kinds_mask;
static unsigned ops_by_kind[K_COUNT];
static uint64_t image_id = 1;

/* ------------------------------------------------------------------------ */
/* Guest memory                                                             */

static uint64_t gpa(const void *p)
{
    return ((uint64_t)SCENE_SLOT << SLOT_SHIFT) | ((uint64_t)SCENE_GEN << GEN_SHIFT) |
           (GUEST_BASE + (uint64_t)((const uint8_t *)p - ram));
}

static void *galloc(size_t n)
{
    size_t at = (ram_used + 15) & ~(size_t)15;
    if (at + n > RAM_SIZE) {
        out("{\"event\":\"fatal\",\"what\":\"scene RAM exhausted\"}");
        exit(1);
    }
    ram_used = at + n;
    memset(ram + at, 0, n);
    return ram + at;
}

static uint64_t next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, n) (n > 0). */
static int below(int n)
{
    return (int)(next() % (uint64_t)n);
}

static int between(int lo, int hi)
{
    return lo + below(hi - lo + 1);
}

static void random_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0) {
            uint64_t v = next();
            memcpy(p + i, &v, n - i < 8 ? n - i : 8);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The ring                                                                 */

static void push(uint32_t type, void *data)
{
    pthread_mutex_lock(&scene_lock);
    if (cmds_made == MAX_CMDS) {
        pthread_mutex_unlock(&scene_lock);
        out("{\"event\":\"fatal\",\"what\":\"scene command table full\"}");
        exit(1);
    }
    /* The release info opens both QXLDrawable and QXLSurfaceCmd. */
    ((QXLReleaseInfo *)data)->id = cmds_made + 1;
    SceneCmd *c = &cmds[cmds_made++];
    c->ext.cmd.data = gpa(data);
    c->ext.cmd.type = type;
    c->ext.group_id = SCENE_GROUP;
    c->ext.flags = 0;
    pthread_mutex_unlock(&scene_lock);
}

int scene_get_command(QXLCommandExt *ext)
{
    int got = 0;
    pthread_mutex_lock(&scene_lock);
    if (cmds_sent < cmds_made) {
        *ext = cmds[cmds_sent++].ext;
        got = 1;
    }
    pthread_mutex_unlock(&scene_lock);
    return got;
}

void scene_release(QXLReleaseInfoExt rext)
{
    uint64_t id = rext.info ? rext.info->id : 0;
    pthread_mutex_lock(&scene_lock);
    if (id == 0 || id > cmds_sent) {
        cmds_bad++;
    } else if (cmds[id - 1].released) {
        cmds_double++;
    } else {
        cmds[id - 1].released = 1;
        cmds_released++;
    }
    pthread_mutex_unlock(&scene_lock);
}

int scene_async_complete(uint64_t cookie)
{
    pthread_mutex_lock(&scene_lock);
    int ours = waiting_cookie != 0 && cookie == waiting_cookie;
    if (ours) {
        completed_cookie = cookie;
        pthread_cond_broadcast(&scene_cond);
    }
    pthread_mutex_unlock(&scene_lock);
    return ours;
}

int scene_active(void)
{
    return active;
}

/* ------------------------------------------------------------------------ */
/* Surfaces                                                                 */

static int format_bpp(uint32_t format)
{
    switch (format) {
    case SPICE_SURFACE_FMT_32_xRGB:
    case SPICE_SURFACE_FMT_32_ARGB:
        return 32;
    case SPICE_SURFACE_FMT_16_565:
    case SPICE_SURFACE_FMT_16_555:
        return 16;
    case SPICE_SURFACE_FMT_8_A:
        return 8;
    default:
        return 1;
    }
}

static uint8_t *row_of(const Surf *s, int y)
{
    size_t abs_stride = (size_t)(s->stride < 0 ? -s->stride : s->stride);
    int line = s->stride < 0 ? s->h - 1 - y : y;
    return s->mem + (size_t)line * abs_stride;
}

/* A surface over guest memory that holds a pattern (a guest reusing pages). */
static Surf *new_surface(int id, uint32_t format, int w, int h, int pad, int bottom_up)
{
    Surf *s = &surf[id];
    s->live = 1;
    s->format = format;
    s->w = w;
    s->h = h;
    s->bpp = format_bpp(format);
    int32_t stride = (int32_t)(((size_t)w * s->bpp / 8 + 3) & ~(size_t)3) + pad;
    s->stride = bottom_up ? -stride : stride;
    s->bytes = (size_t)stride * h;
    s->mem = galloc(s->bytes);
    random_bytes(s->mem, s->bytes);
    return s;
}

static void create_surface(int id, uint32_t format, int w, int h, int pad, int bottom_up,
                           int keep)
{
    Surf *s = new_surface(id, format, w, h, pad, bottom_up);
    QXLSurfaceCmd *c = galloc(sizeof(*c));
    c->surface_id = (uint32_t)id;
    c->type = QXL_SURFACE_CMD_CREATE;
    c->flags = keep ? QXL_SURF_FLAG_KEEP_DATA : 0;
    c->u.surface_create.format = format;
    c->u.surface_create.width = (uint32_t)w;
    c->u.surface_create.height = (uint32_t)h;
    c->u.surface_create.stride = s->stride;
    c->u.surface_create.data = gpa(s->mem);
    push(QXL_CMD_SURFACE, c);
}

static void destroy_surface(int id)
{
    QXLSurfaceCmd *c = galloc(sizeof(*c));
    c->surface_id = (uint32_t)id;
    c->type = QXL_SURFACE_CMD_DESTROY;
    push(QXL_CMD_SURFACE, c);
    surf[id].live = 0;
}

static void create_primary(void)
{
    Surf *s = new_surface(0, SPICE_SURFACE_FMT_32_xRGB, PRIMARY_W, PRIMARY_H, 0, 1);
    QXLDevSurfaceCreate c;
    memset(&c, 0, sizeof(c));
    c.format = s->format;
    c.width = (uint32_t)s->w;
    c.height = (uint32_t)s->h;
    c.stride = s->stride;
    c.mouse_mode = 1;
    c.flags = 0;
    c.type = QXL_SURF_TYPE_PRIMARY;
    c.mem = gpa(s->mem);
    c.group_id = SCENE_GROUP;
    spice_qxl_create_primary_surface(scene_qxl, 0, &c);
}

/* ------------------------------------------------------------------------ */
/* Drawables                                                                */

static QXLRect rect(int left, int top, int right, int bottom)
{
    QXLRect r = {.top = top, .left = left, .bottom = bottom, .right = right};
    return r;
}

/* A box of at least 1x1 inside surface `s`, at most `max_w` x `max_h`. */
static QXLRect random_box(const Surf *s, int max_w, int max_h)
{
    int w = between(1, max_w < s->w ? max_w : s->w);
    int h = between(1, max_h < s->h ? max_h : s->h);
    int x = below(s->w - w + 1), y = below(s->h - h + 1);
    return rect(x, y, x + w, y + h);
}

static QXLDrawable *new_drawable(int sid, uint8_t type, QXLRect bbox, uint8_t effect)
{
    QXLDrawable *d = galloc(sizeof(*d));
    d->surface_id = (uint32_t)sid;
    d->effect = effect;
    d->type = type;
    d->bbox = bbox;
    d->clip.type = SPICE_CLIP_TYPE_NONE;
    d->surfaces_dest[0] = d->surfaces_dest[1] = d->surfaces_dest[2] = -1;
    d->mm_time = 0;
    return d;
}

/* 1 to 4 rectangles around the box (some reaching outside it). */
static void clip_rects(QXLDrawable *d, const Surf *s)
{
    int n = between(1, 4);
    QXLClipRects *c = galloc(sizeof(*c) + (size_t)n * sizeof(QXLRect));
    c->num_rects = (uint32_t)n;
    c->chunk.data_size = (uint32_t)(n * sizeof(QXLRect));
    QXLRect *r = (QXLRect *)c->chunk.data;
    for (int i = 0; i < n; i++) {
        int bw = d->bbox.right - d->bbox.left, bh = d->bbox.bottom - d->bbox.top;
        int x = d->bbox.left + between(-bw / 2, bw);
        int y = d->bbox.top + between(-bh / 2, bh);
        int x2 = x + between(1, bw), y2 = y + between(1, bh);
        r[i] = rect(x < 0 ? 0 : x, y < 0 ? 0 : y, x2 > s->w ? s->w : x2, y2 > s->h ? s->h : y2);
        if (r[i].right <= r[i].left || r[i].bottom <= r[i].top) {
            r[i] = d->bbox;
        }
    }
    d->clip.type = SPICE_CLIP_TYPE_RECTS;
    d->clip.data = gpa(c);
}

static QXLImage *new_image(uint8_t type, int w, int h)
{
    QXLImage *img = galloc(sizeof(*img));
    QXL_SET_IMAGE_ID(img, QXL_IMAGE_GROUP_DEVICE, image_id++);
    img->descriptor.type = type;
    img->descriptor.flags = 0;
    img->descriptor.width = (uint32_t)w;
    img->descriptor.height = (uint32_t)h;
    return img;
}

/* A 32-bit top-down bitmap of random pixels (or of `ncolors` colours). */
static QXLImage *bitmap32(int w, int h, const uint32_t *colors, int ncolors)
{
    QXLImage *img = new_image(SPICE_IMAGE_TYPE_BITMAP, w, h);
    uint32_t *px = galloc((size_t)w * h * 4);
    for (int i = 0; i < w * h; i++) {
        px[i] = ncolors ? colors[below(ncolors)] : (uint32_t)next();
    }
    img->bitmap.format = SPICE_BITMAP_FMT_32BIT;
    img->bitmap.flags = QXL_BITMAP_DIRECT | QXL_BITMAP_TOP_DOWN;
    img->bitmap.x = (uint32_t)w;
    img->bitmap.y = (uint32_t)h;
    img->bitmap.stride = (uint32_t)w * 4;
    img->bitmap.data = gpa(px);
    return img;
}

static void random_mask(QXLQMask *m, QXLRect bbox)
{
    int bw = bbox.right - bbox.left, bh = bbox.bottom - bbox.top;
    int w = between(1, bw + 8), h = between(1, bh + 8);
    QXLImage *img = new_image(SPICE_IMAGE_TYPE_BITMAP, w, h);
    int stride = (w + 7) / 8;
    uint8_t *bits = galloc((size_t)stride * h);
    random_bytes(bits, (size_t)stride * h);
    img->bitmap.format = SPICE_BITMAP_FMT_1BIT_BE;
    img->bitmap.flags = QXL_BITMAP_DIRECT | QXL_BITMAP_TOP_DOWN;
    img->bitmap.x = (uint32_t)w;
    img->bitmap.y = (uint32_t)h;
    img->bitmap.stride = (uint32_t)stride;
    img->bitmap.data = gpa(bits);
    m->flags = below(2) ? SPICE_MASK_FLAGS_INVERS : 0;
    m->pos.x = below(w);
    m->pos.y = below(h);
    m->bitmap = gpa(img);
}

static void solid(QXLBrush *b)
{
    b->type = SPICE_BRUSH_TYPE_SOLID;
    b->u.color = (uint32_t)next();
}

static void pattern(QXLBrush *b)
{
    b->type = SPICE_BRUSH_TYPE_PATTERN;
    b->u.pattern.pat = gpa(bitmap32(between(2, 9), between(2, 9), NULL, 0));
    b->u.pattern.pos.x = between(-12, 12);
    b->u.pattern.pos.y = between(-12, 12);
}

static const uint16_t ropds[] = {
    SPICE_ROPD_OP_PUT,
    SPICE_ROPD_OP_XOR,
    SPICE_ROPD_OP_AND | SPICE_ROPD_INVERS_BRUSH,
    SPICE_ROPD_OP_OR | SPICE_ROPD_INVERS_RES,
    SPICE_ROPD_OP_OR,
    SPICE_ROPD_OP_AND,
    SPICE_ROPD_OP_XOR | SPICE_ROPD_INVERS_DEST,
    SPICE_ROPD_OP_PUT | SPICE_ROPD_INVERS_BRUSH,
    SPICE_ROPD_OP_AND | SPICE_ROPD_INVERS_DEST | SPICE_ROPD_INVERS_RES,
};
/* The same for a source operand (INVERS_SRC in place of INVERS_BRUSH). */
static uint16_t src_ropd(uint16_t r)
{
    return (uint16_t)(r & SPICE_ROPD_INVERS_BRUSH ? (r & ~SPICE_ROPD_INVERS_BRUSH) | SPICE_ROPD_INVERS_SRC
                                                  : r);
}
#define N_ROPDS ((int)(sizeof(ropds) / sizeof(ropds[0])))

static int is_alpha_only(const Surf *s)
{
    return s->format == SPICE_SURFACE_FMT_8_A;
}

/* Another live surface a copy onto `target` can read: one of the same depth
 * (the C canvas blits surfaces without conversion and aborts otherwise), or -1. */
static int source_surface(int target)
{
    int ids[N_SURFACES], n = 0;
    for (int i = 0; i < N_SURFACES; i++) {
        if (i != target && surf[i].live && surf[i].bpp == surf[target].bpp) {
            ids[n++] = i;
        }
    }
    return n ? ids[below(n)] : -1;
}

/* Source area of `w` x `h` inside a `sw` x `sh` picture (w, h at most sw, sh). */
static QXLRect src_area(int sw, int sh, int w, int h)
{
    int x = below(sw - w + 1), y = below(sh - h + 1);
    return rect(x, y, x + w, y + h);
}

static int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* A top-down bitmap of random pixels in `format`: SPICE_BITMAP_FMT_32BIT,
 * _RGBA (valid premultiplied ARGB: colour at most alpha, some pixels fully
 * opaque or clear) or _8BIT_A. */
static QXLImage *bitmap_of(uint8_t format, int w, int h)
{
    int bpp = format == SPICE_BITMAP_FMT_8BIT_A ? 1 : 4;
    int stride = (w * bpp + 3) & ~3;
    QXLImage *img = new_image(SPICE_IMAGE_TYPE_BITMAP, w, h);
    uint8_t *px = galloc((size_t)stride * h);
    random_bytes(px, (size_t)stride * h);
    if (format == SPICE_BITMAP_FMT_RGBA) {
        for (int y = 0; y < h; y++) {
            uint32_t *row = (uint32_t *)(px + (size_t)y * stride);
            for (int x = 0; x < w; x++) {
                uint32_t v = row[x], a = v >> 24;
                int pick = below(8);
                a = pick == 0 ? 0 : pick == 1 ? 0xff : a;
                uint32_t r = a ? ((v >> 16) & 0xff) % (a + 1) : 0;
                uint32_t g = a ? ((v >> 8) & 0xff) % (a + 1) : 0;
                uint32_t b = a ? (v & 0xff) % (a + 1) : 0;
                row[x] = a << 24 | r << 16 | g << 8 | b;
            }
        }
    }
    img->bitmap.format = format;
    img->bitmap.flags = QXL_BITMAP_DIRECT | QXL_BITMAP_TOP_DOWN;
    img->bitmap.x = (uint32_t)w;
    img->bitmap.y = (uint32_t)h;
    img->bitmap.stride = (uint32_t)stride;
    img->bitmap.data = gpa(px);
    return img;
}

/* An image of another live 32-bit surface, its id in *src (or NULL). */
static QXLImage *surface_image32(int target, int *src)
{
    int ids[N_SURFACES], n = 0;
    for (int i = 0; i < N_SURFACES; i++) {
        if (i != target && surf[i].live && surf[i].bpp == 32) {
            ids[n++] = i;
        }
    }
    if (!n) {
        return NULL;
    }
    *src = ids[below(n)];
    QXLImage *img = new_image(SPICE_IMAGE_TYPE_SURFACE, surf[*src].w, surf[*src].h);
    img->surface_image.surface_id = (uint32_t)*src;
    return img;
}

/* A 16.16 transform: identity, a scale, or a scale with a shear, plus a
 * translation; NULL (no transform) half of the time. */
static uint64_t random_transform(void)
{
    if (below(2)) {
        return 0;
    }
    QXLTransform *t = galloc(sizeof(*t));
    static const int32_t scales[] = {0x10000, 0x8000, 0x18000, 0x20000, 0xC000};
    t->t00 = (uint32_t)scales[below(5)];
    t->t11 = (uint32_t)scales[below(5)];
    t->t01 = below(4) == 0 ? (uint32_t)between(-0x4000, 0x4000) : 0;
    t->t10 = below(4) == 0 ? (uint32_t)between(-0x4000, 0x4000) : 0;
    t->t02 = (uint32_t)(between(-6, 6) * 0x10000 + (below(2) ? 0x8000 : 0));
    t->t12 = (uint32_t)(between(-6, 6) * 0x10000);
    return gpa(t);
}

static int32_t fix(int pixel, int sixteenths)
{
    return (int32_t)(pixel * 16 + sixteenths);
}

/* One drawable of kind `k` on surface `sid`; 0 if the kind does not fit it. */
static int add_op(int k, int sid)
{
    Surf *t = &surf[sid];
    QXLRect box = random_box(t, t->w * 2 / 3 + 1, t->h * 2 / 3 + 1);
    int bw = box.right - box.left, bh = box.bottom - box.top;
    QXLDrawable *d;
    switch (k) {
    case K_FILL:
        d = new_drawable(sid, QXL_DRAW_FILL, box, QXL_EFFECT_OPAQUE);
        solid(&d->u.fill.brush);
        d->u.fill.rop_descriptor = SPICE_ROPD_OP_PUT;
        if (below(2)) {
            clip_rects(d, t);
        }
        break;
    case K_FILL_ROP:
        d = new_drawable(sid, QXL_DRAW_FILL, box, QXL_EFFECT_BLEND);
        solid(&d->u.fill.brush);
        d->u.fill.rop_descriptor = ropds[1 + below(N_ROPDS - 1)];
        if (below(3) == 0) {
            clip_rects(d, t);
        }
        break;
    case K_FILL_MASK:
        d = new_drawable(sid, QXL_DRAW_FILL, box, QXL_EFFECT_BLEND);
        solid(&d->u.fill.brush);
        d->u.fill.rop_descriptor = below(2) ? SPICE_ROPD_OP_PUT : SPICE_ROPD_OP_XOR;
        random_mask(&d->u.fill.mask, box);
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    case K_FILL_PATTERN:
        if (is_alpha_only(t)) {
            return 0;
        }
        d = new_drawable(sid, QXL_DRAW_FILL, box, QXL_EFFECT_BLEND);
        pattern(&d->u.fill.brush);
        d->u.fill.rop_descriptor = below(2) ? SPICE_ROPD_OP_PUT : ropds[below(N_ROPDS)];
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    case K_COPY_BITS: {
        /* A move by up to 24 pixels each way whose source stays inside. */
        int dx = between(-24, 24), dy = between(-24, 24);
        if (dx == 0 && dy == 0) {
            dx = 1;
        }
        int sx = clamp_int(box.left + dx, 0, t->w - bw);
        int sy = clamp_int(box.top + dy, 0, t->h - bh);
        d = new_drawable(sid, QXL_COPY_BITS, box, QXL_EFFECT_OPAQUE);
        d->u.copy_bits.src_pos.x = sx;
        d->u.copy_bits.src_pos.y = sy;
        break;
    }
    case K_COPY:
    case K_BLEND: {
        if (is_alpha_only(t)) {
            return 0;
        }
        int sw = bw + below(12), sh = bh + below(12);
        uint16_t r = below(2) ? SPICE_ROPD_OP_PUT : src_ropd(ropds[below(N_ROPDS)]);
        int masked = below(4) == 0;
        d = new_drawable(sid, k == K_COPY ? QXL_DRAW_COPY : QXL_DRAW_BLEND, box,
                         k == K_COPY && r == SPICE_ROPD_OP_PUT && !masked ? QXL_EFFECT_OPAQUE
                                                                          : QXL_EFFECT_BLEND);
        d->u.copy.src_bitmap = gpa(bitmap32(sw, sh, NULL, 0));
        d->u.copy.src_area = src_area(sw, sh, bw, bh);
        d->u.copy.rop_descriptor = r;
        d->u.copy.scale_mode = SPICE_IMAGE_SCALE_MODE_NEAREST;
        if (masked) {
            random_mask(&d->u.copy.mask, box);
        }
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    }
    case K_COPY_SCALED: {
        if (is_alpha_only(t)) {
            return 0;
        }
        int aw = between(1, 2 * bw), ah = between(1, 2 * bh);
        if (aw == bw && ah == bh) {
            aw = bw + 1;
        }
        int sw = aw + below(6), sh = ah + below(6);
        uint16_t r = below(3) ? SPICE_ROPD_OP_PUT : SPICE_ROPD_OP_XOR;
        d = new_drawable(sid, QXL_DRAW_COPY, box,
                         r == SPICE_ROPD_OP_PUT ? QXL_EFFECT_OPAQUE : QXL_EFFECT_BLEND);
        d->u.copy.src_bitmap = gpa(bitmap32(sw, sh, NULL, 0));
        d->u.copy.src_area = src_area(sw, sh, aw, ah);
        d->u.copy.rop_descriptor = r;
        d->u.copy.scale_mode = SPICE_IMAGE_SCALE_MODE_NEAREST;
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    }
    case K_COPY_SURF:
    case K_COPY_SURF_SCALED: {
        int src = source_surface(sid);
        if (src < 0) {
            return 0;
        }
        Surf *s = &surf[src];
        int aw, ah;
        if (k == K_COPY_SURF) {
            bw = bw < s->w ? bw : s->w;
            bh = bh < s->h ? bh : s->h;
            box.right = box.left + bw;
            box.bottom = box.top + bh;
            aw = bw;
            ah = bh;
        } else {
            aw = between(1, 2 * bw < s->w ? 2 * bw : s->w);
            ah = between(1, 2 * bh < s->h ? 2 * bh : s->h);
            if (aw == bw && ah == bh) {
                aw = aw > 1 ? aw - 1 : aw + 1;
            }
        }
        uint16_t r = below(2) ? SPICE_ROPD_OP_PUT : src_ropd(ropds[below(N_ROPDS)]);
        d = new_drawable(sid, QXL_DRAW_COPY, box,
                         r == SPICE_ROPD_OP_PUT ? QXL_EFFECT_OPAQUE : QXL_EFFECT_BLEND);
        QXLImage *img = new_image(SPICE_IMAGE_TYPE_SURFACE, s->w, s->h);
        img->surface_image.surface_id = (uint32_t)src;
        d->u.copy.src_bitmap = gpa(img);
        d->u.copy.src_area = src_area(s->w, s->h, aw, ah);
        d->u.copy.rop_descriptor = r;
        d->u.copy.scale_mode = SPICE_IMAGE_SCALE_MODE_NEAREST;
        /* What a guest driver declares: the area of the other surface read. */
        d->surfaces_dest[0] = src;
        d->surfaces_rects[0] = d->u.copy.src_area;
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    }
    case K_BWI: {
        static const uint8_t types[] = {QXL_DRAW_BLACKNESS, QXL_DRAW_WHITENESS, QXL_DRAW_INVERS};
        uint8_t type = types[below(3)];
        int masked = below(3) == 0;
        d = new_drawable(sid, type, box,
                         type != QXL_DRAW_INVERS && !masked ? QXL_EFFECT_OPAQUE : QXL_EFFECT_BLEND);
        if (masked) {
            /* blackness, whiteness and invers are each just a mask */
            random_mask(&d->u.blackness.mask, box);
        }
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    }
    case K_OPAQUE: {
        if (is_alpha_only(t)) {
            return 0;
        }
        int sw = bw + below(6), sh = bh + below(6);
        d = new_drawable(sid, QXL_DRAW_OPAQUE, box, QXL_EFFECT_BLEND);
        d->u.opaque.src_bitmap = gpa(bitmap32(sw, sh, NULL, 0));
        d->u.opaque.src_area = src_area(sw, sh, bw, bh);
        if (below(3) == 0) {
            pattern(&d->u.opaque.brush);
        } else {
            solid(&d->u.opaque.brush);
        }
        /* brush onto source: INVERS_SRC inverts the source drawn first */
        uint16_t r = ropds[below(N_ROPDS)];
        if (r & SPICE_ROPD_INVERS_DEST) {
            r = (uint16_t)((r & ~SPICE_ROPD_INVERS_DEST) | SPICE_ROPD_INVERS_SRC);
        }
        d->u.opaque.rop_descriptor = r;
        d->u.opaque.scale_mode = SPICE_IMAGE_SCALE_MODE_NEAREST;
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    }
    case K_ROP3: {
        static const uint8_t codes[] = {0xCA, 0x96, 0xB8, 0x6A, 0xE2, 0x1D, 0x4E, 0xD8};
        /* the C canvas has ROP3 for 32-bit surfaces only (others abort) */
        if (t->bpp != 32) {
            return 0;
        }
        int sw = bw + below(6), sh = bh + below(6);
        d = new_drawable(sid, QXL_DRAW_ROP3, box, QXL_EFFECT_BLEND);
        d->u.rop3.src_bitmap = gpa(bitmap32(sw, sh, NULL, 0));
        d->u.rop3.src_area = src_area(sw, sh, bw, bh);
        solid(&d->u.rop3.brush);
        d->u.rop3.rop3 = codes[below((int)sizeof(codes))];
        d->u.rop3.scale_mode = SPICE_IMAGE_SCALE_MODE_NEAREST;
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    }
    case K_TRANSPARENT: {
        if (t->bpp != 32) {
            return 0;
        }
        uint32_t colors[3] = {(uint32_t)next() & 0xFFFFFF, (uint32_t)next() & 0xFFFFFF,
                              (uint32_t)next() & 0xFFFFFF};
        int sw = bw + below(6), sh = bh + below(6);
        d = new_drawable(sid, QXL_DRAW_TRANSPARENT, box, QXL_EFFECT_BLEND);
        d->u.transparent.src_bitmap = gpa(bitmap32(sw, sh, colors, 3));
        d->u.transparent.src_area = src_area(sw, sh, bw, bh);
        d->u.transparent.src_color = colors[0];
        d->u.transparent.true_color = colors[0];
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    }
    case K_ALPHA_BLEND: {
        if (t->bpp < 16) {
            return 0;
        }
        int aw = bw, ah = bh;
        if (below(3) == 0) {
            aw = between(1, 2 * bw);
            ah = between(1, 2 * bh);
        }
        d = new_drawable(sid, QXL_DRAW_ALPHA_BLEND, box, QXL_EFFECT_BLEND);
        int src = -1;
        QXLImage *img = below(4) == 0 ? surface_image32(sid, &src) : NULL;
        uint16_t flags = below(2) ? SPICE_ALPHA_FLAGS_DEST_HAS_ALPHA : 0;
        if (img) {
            Surf *s = &surf[src];
            aw = aw < s->w ? aw : s->w;
            ah = ah < s->h ? ah : s->h;
            d->u.alpha_blend.src_area = src_area(s->w, s->h, aw, ah);
            if (s->format == SPICE_SURFACE_FMT_32_ARGB) {
                flags |= SPICE_ALPHA_FLAGS_SRC_SURFACE_HAS_ALPHA;
            }
            d->surfaces_dest[0] = src;
            d->surfaces_rects[0] = d->u.alpha_blend.src_area;
        } else {
            int sw = aw + below(6), sh = ah + below(6);
            img = bitmap_of(below(2) ? SPICE_BITMAP_FMT_RGBA : SPICE_BITMAP_FMT_32BIT, sw, sh);
            d->u.alpha_blend.src_area = src_area(sw, sh, aw, ah);
        }
        d->u.alpha_blend.src_bitmap = gpa(img);
        d->u.alpha_blend.alpha_flags = flags;
        d->u.alpha_blend.alpha = (uint8_t)(below(4) == 0 ? 255 : between(1, 254));
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    }
    case K_COMPOSITE: {
        static const uint8_t ops[] = {
            QXL_OP_OVER, QXL_OP_OVER, QXL_OP_SOURCE, QXL_OP_CLEAR, QXL_OP_IN,
            QXL_OP_OUT_REVERSE, QXL_OP_ATOP, QXL_OP_XOR, QXL_OP_ADD, QXL_OP_SATURATE,
            QXL_OP_MULTIPLY, QXL_OP_SCREEN, QXL_OP_DIFFERENCE, QXL_OP_OVER_REVERSE,
        };
        if (t->bpp != 32) {
            return 0;
        }
        uint32_t flags = ops[below((int)sizeof(ops))];
        flags |= (uint32_t)below(2) << 8;  /* source filter: nearest, bilinear */
        flags |= (uint32_t)below(2) << 11; /* mask filter */
        flags |= (uint32_t)below(4) << 14; /* source repeat: none, normal, pad, reflect */
        flags |= (uint32_t)below(4) << 16; /* mask repeat */
        d = new_drawable(sid, QXL_DRAW_COMPOSITE, box, QXL_EFFECT_BLEND);
        int src = -1;
        QXLImage *img = below(4) == 0 ? surface_image32(sid, &src) : NULL;
        if (img) {
            d->surfaces_dest[0] = src;
            d->surfaces_rects[0] = rect(0, 0, surf[src].w, surf[src].h);
        } else {
            img = bitmap_of(below(3) ? SPICE_BITMAP_FMT_RGBA : SPICE_BITMAP_FMT_32BIT,
                            between(1, bw + 8), between(1, bh + 8));
        }
        d->u.composite.src = gpa(img);
        /* Transforms on bitmaps only: the C canvas sets a surface
         * operand's transform on the surface's own pixman image and leaves
         * it there, so every later read of that surface (copies included)
         * goes through it, a C bug spice-canvas's composite.rs does not
         * reproduce. */
        d->u.composite.src_transform = src < 0 ? random_transform() : 0;
        d->u.composite.src_origin.x = (int16_t)between(-8, 8);
        d->u.composite.src_origin.y = (int16_t)between(-8, 8);
        if (below(2)) {
            /* A8 masks come from A8 surfaces, as Xorg's qxl driver sends
             * its glyphs: the C canvas converts an A8 *bitmap* to the
             * target's format as if it were a colour image (reading its
             * bytes as pixels), a path no guest driver takes. */
            int component = below(3) == 0;
            int a8 = surf[3].live && surf[3].format == SPICE_SURFACE_FMT_8_A ? 3 : -1;
            if (!component && a8 >= 0 && below(2)) {
                if (surf[7].live && below(2)) {
                    a8 = 7;
                }
                QXLImage *mask = new_image(SPICE_IMAGE_TYPE_SURFACE, surf[a8].w, surf[a8].h);
                mask->surface_image.surface_id = (uint32_t)a8;
                d->u.composite.mask = gpa(mask);
                d->surfaces_dest[1] = a8;
                d->surfaces_rects[1] = rect(0, 0, surf[a8].w, surf[a8].h);
            } else {
                d->u.composite.mask = gpa(bitmap_of(SPICE_BITMAP_FMT_RGBA, between(1, bw + 8),
                                                    between(1, bh + 8)));
            }
            QXLImage *m = (QXLImage *)(ram + ((d->u.composite.mask & 0xffffffffffffull) - GUEST_BASE));
            d->u.composite.mask_transform =
                m->descriptor.type == SPICE_IMAGE_TYPE_BITMAP ? random_transform() : 0;
            d->u.composite.mask_origin.x = (int16_t)between(-8, 8);
            d->u.composite.mask_origin.y = (int16_t)between(-8, 8);
            if (component) {
                flags |= SPICE_COMPOSITE_COMPONENT_ALPHA;
            }
        }
        d->u.composite.flags = flags;
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    }
    case K_TEXT: {
        int a4 = below(2), bpp = a4 ? 4 : 1;
        int n = between(1, 6);
        int ws[6], hs[6];
        size_t total = 0;
        for (int i = 0; i < n; i++) {
            ws[i] = between(1, 12);
            hs[i] = between(1, 16);
            total += sizeof(QXLRasterGlyph) + (size_t)hs[i] * ((ws[i] * bpp + 7) / 8);
        }
        QXLString *str = galloc(sizeof(QXLString) + total);
        str->data_size = (uint32_t)total;
        str->length = (uint16_t)n;
        str->flags = a4 ? SPICE_STRING_FLAGS_RASTER_A4 : SPICE_STRING_FLAGS_RASTER_A1;
        str->chunk.data_size = (uint32_t)total;
        uint8_t *p = str->chunk.data;
        int pen = box.left + between(-4, 8), base = box.top + between(4, bh + 4);
        for (int i = 0; i < n; i++) {
            QXLRasterGlyph *g = (QXLRasterGlyph *)p;
            g->render_pos.x = pen;
            g->render_pos.y = base;
            g->glyph_origin.x = between(-2, 2);
            g->glyph_origin.y = -hs[i] + between(0, 3);
            g->width = (uint16_t)ws[i];
            g->height = (uint16_t)hs[i];
            size_t bytes = (size_t)hs[i] * ((ws[i] * bpp + 7) / 8);
            random_bytes(p + sizeof(QXLRasterGlyph), bytes);
            p += sizeof(QXLRasterGlyph) + bytes;
            pen += ws[i] + between(-2, 3);
        }
        d = new_drawable(sid, QXL_DRAW_TEXT, box, QXL_EFFECT_BLEND);
        d->u.text.str = gpa(str);
        if (below(2)) {
            int x = box.left + below(bw), y = box.top + below(bh);
            d->u.text.back_area = rect(x, y, x + between(1, bw), y + between(1, bh));
            solid(&d->u.text.back_brush);
        }
        if (below(4) == 0) {
            pattern(&d->u.text.fore_brush);
        } else {
            solid(&d->u.text.fore_brush);
        }
        d->u.text.fore_mode = SPICE_ROPD_OP_PUT;
        d->u.text.back_mode = SPICE_ROPD_OP_PUT;
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    }
    case K_STROKE: {
        static const uint16_t modes[] = {SPICE_ROPD_OP_PUT, SPICE_ROPD_OP_PUT, SPICE_ROPD_OP_XOR,
                                         SPICE_ROPD_OP_OR, SPICE_ROPD_OP_AND};
        if (t->bpp != 32) {
            return 0;
        }
        /* Styled strokes stay axis-aligned: spice-canvas's stroke.rs says
         * why a diagonal dash's edge pixels may differ from C's. */
        int styled = below(3) == 0;
        int polylines = between(1, 3);
        QXLPointFix pts[64];
        uint32_t seg_flags[16], seg_counts[16];
        int nseg = 0, npts = 0;
        for (int l = 0; l < polylines; l++) {
            int x = box.left + below(bw), y = box.top + below(bh);
            int segs = between(1, 3), horizontal = below(2);
            for (int s = 0; s < segs; s++) {
                int bezier = !styled && below(4) == 0;
                int count = bezier ? 3 : between(1, 3);
                uint32_t f = 0;
                if (s == 0) {
                    f |= SPICE_PATH_BEGIN;
                    /* A BEGIN segment's first point is where the line starts. */
                    pts[npts].x = fix(x, styled ? 0 : below(16));
                    pts[npts].y = fix(y, styled ? 0 : below(16));
                    npts++;
                    count += 1;
                    if (bezier) {
                        bezier = 0;
                        count = 2;
                    }
                }
                int first = s == 0 ? 1 : 0;
                for (int i = first; i < count; i++) {
                    if (styled) {
                        if (horizontal) {
                            x = box.left + below(bw);
                        } else {
                            y = box.top + below(bh);
                        }
                        horizontal = !horizontal;
                    } else {
                        x = box.left + below(bw);
                        y = box.top + below(bh);
                    }
                    pts[npts].x = fix(x, styled ? 0 : below(16));
                    pts[npts].y = fix(y, styled ? 0 : below(16));
                    npts++;
                }
                if (bezier) {
                    f |= SPICE_PATH_BEZIER;
                }
                if (s == segs - 1) {
                    /* (CLOSE draws back to the start: diagonal in general) */
                    f |= SPICE_PATH_END | (!styled && below(3) == 0 ? SPICE_PATH_CLOSE : 0);
                }
                seg_flags[nseg] = f;
                seg_counts[nseg] = (uint32_t)count;
                nseg++;
            }
        }
        size_t bytes = (size_t)nseg * sizeof(QXLPathSeg) + (size_t)npts * sizeof(QXLPointFix);
        QXLPath *path = galloc(sizeof(QXLPath) + bytes);
        path->data_size = (uint32_t)bytes;
        path->chunk.data_size = (uint32_t)bytes;
        uint8_t *p = path->chunk.data;
        int at = 0;
        for (int s = 0; s < nseg; s++) {
            QXLPathSeg *seg = (QXLPathSeg *)p;
            seg->flags = seg_flags[s];
            seg->count = seg_counts[s];
            memcpy(seg->points, &pts[at], seg_counts[s] * sizeof(QXLPointFix));
            at += (int)seg_counts[s];
            p += sizeof(QXLPathSeg) + seg_counts[s] * sizeof(QXLPointFix);
        }
        d = new_drawable(sid, QXL_DRAW_STROKE, box, QXL_EFFECT_BLEND);
        d->u.stroke.path = gpa(path);
        if (styled) {
            int n = between(1, 4);
            QXLFIXED *style = galloc((size_t)n * sizeof(QXLFIXED));
            for (int i = 0; i < n; i++) {
                style[i] = (QXLFIXED)fix(between(1, 6), 0);
            }
            d->u.stroke.attr.flags =
                SPICE_LINE_FLAGS_STYLED | (below(2) ? SPICE_LINE_FLAGS_START_WITH_GAP : 0);
            d->u.stroke.attr.style_nseg = (uint8_t)n;
            d->u.stroke.attr.style = gpa(style);
        }
        solid(&d->u.stroke.brush);
        d->u.stroke.fore_mode = modes[below((int)(sizeof(modes) / sizeof(modes[0])))];
        d->u.stroke.back_mode = SPICE_ROPD_OP_PUT;
        if (below(4) == 0) {
            clip_rects(d, t);
        }
        break;
    }
    default:
        return 0;
    }
    push(QXL_CMD_DRAW, d);
    ops_by_kind[k]++;
    if (getenv("SCENE_TRACE")) {
        fprintf(stderr, "TRACE op %u %s sid %d fmt %u box %d,%d-%d,%d clip %u\n", cmds_made,
                kind_names[k], sid, t->format, box.left, box.top, box.right, box.bottom,
                d->clip.type);
        if (k == K_TEXT) {
            QXLString *str = (QXLString *)(ram + ((d->u.text.str & 0xffffffffffffull) - GUEST_BASE));
            fprintf(stderr, "TRACE  text flags %u n %u back %d,%d-%d,%d fore %u back %u\n",
                    str->flags, str->length, d->u.text.back_area.left, d->u.text.back_area.top,
                    d->u.text.back_area.right, d->u.text.back_area.bottom,
                    d->u.text.fore_brush.type, d->u.text.back_brush.type);
            uint8_t *p = str->chunk.data;
            int bpp = str->flags == SPICE_STRING_FLAGS_RASTER_A4 ? 4 : 1;
            for (int i = 0; i < str->length; i++) {
                QXLRasterGlyph *g = (QXLRasterGlyph *)p;
                fprintf(stderr, "TRACE   glyph pos %d,%d origin %d,%d size %ux%u\n", g->render_pos.x,
                        g->render_pos.y, g->glyph_origin.x, g->glyph_origin.y, g->width, g->height);
                p += sizeof(QXLRasterGlyph) + (size_t)g->height * ((g->width * bpp + 7) / 8);
            }
        }
        if (k == K_STROKE) {
            QXLPath *path = (QXLPath *)(ram + ((d->u.stroke.path & 0xffffffffffffull) - GUEST_BASE));
            fprintf(stderr, "TRACE  stroke flags %u nseg %u mode %u\n", d->u.stroke.attr.flags,
                    d->u.stroke.attr.style_nseg, d->u.stroke.fore_mode);
            uint8_t *p = path->chunk.data, *e = p + path->data_size;
            while (p < e) {
                QXLPathSeg *seg = (QXLPathSeg *)p;
                fprintf(stderr, "TRACE   seg %u:", seg->flags);
                for (uint32_t i = 0; i < seg->count; i++) {
                    fprintf(stderr, " %d/%d,%d/%d", seg->points[i].x >> 4, seg->points[i].x & 15,
                            seg->points[i].y >> 4, seg->points[i].y & 15);
                }
                fprintf(stderr, "\n");
                p += sizeof(QXLPathSeg) + seg->count * sizeof(QXLPointFix);
            }
        }
        if (k == K_COMPOSITE) {
            QXLImage *si = (QXLImage *)(ram + ((d->u.composite.src & 0xffffffffffffull) - GUEST_BASE));
            QXLImage *mi = d->u.composite.mask ? (QXLImage *)(ram + ((d->u.composite.mask & 0xffffffffffffull) - GUEST_BASE)) : NULL;
            fprintf(stderr, "TRACE  src type %u fmt %u %ux%u surf %u; mask type %d fmt %d surf %d\n",
                    si->descriptor.type, si->bitmap.format, si->descriptor.width, si->descriptor.height,
                    si->surface_image.surface_id, mi ? mi->descriptor.type : -1, mi ? mi->bitmap.format : -1,
                    mi ? (int)mi->surface_image.surface_id : -1);
            if (d->u.composite.src_transform) {
                QXLTransform *tr = (QXLTransform *)(ram + ((d->u.composite.src_transform & 0xffffffffffffull) - GUEST_BASE));
                fprintf(stderr, "TRACE  src tr %x %x %x %x %x %x\n", tr->t00, tr->t01, tr->t02, tr->t10, tr->t11, tr->t12);
            }
            fprintf(stderr, "TRACE  composite flags %x src_tr %d mask %d mask_tr %d origins %d,%d %d,%d\n",
                    d->u.composite.flags, d->u.composite.src_transform != 0,
                    d->u.composite.mask != 0, d->u.composite.mask_transform != 0,
                    d->u.composite.src_origin.x, d->u.composite.src_origin.y,
                    d->u.composite.mask_origin.x, d->u.composite.mask_origin.y);
        }
    }
    return 1;
}

static void add_ops(int n)
{
    for (int i = 0; i < n;) {
        int k = below(K_COUNT);
        int sid = below(N_SURFACES);
        if (!(kinds_mask & (1u << k)) || !surf[sid].live) {
            continue;
        }
        if (add_op(k, sid)) {
            i++;
        }
        /* Surface 6 comes and goes: destroyed, then back as another format. */
        if (i == n / 2 && surf[6].live && surf[6].format == SPICE_SURFACE_FMT_32_xRGB) {
            destroy_surface(6);
            create_surface(6, SPICE_SURFACE_FMT_32_ARGB, 48, 32, 4, 0, 1);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Dumps                                                                    */

static uint64_t fnv_rows(const Surf *s, QXLRect area)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int y = area.top; y < area.bottom; y++) {
        const uint8_t *row = row_of(s, y);
        size_t b0 = (size_t)area.left * s->bpp / 8, b1 = ((size_t)area.right * s->bpp + 7) / 8;
        for (size_t i = b0; i < b1; i++) {
            h ^= row[i];
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

static int dump(const char *phase, int id, QXLRect area)
{
    const Surf *s = &surf[id];
    char path[2200];
    snprintf(path, sizeof(path), "%s/%s-%d.raw", dir, phase, id);
    FILE *f = fopen(path, "wb");
    if (!f) {
        return 0;
    }
    size_t w = fwrite(s->mem, 1, s->bytes, f);
    fclose(f);
    out("{\"event\":\"scene-surface\",\"phase\":\"%s\",\"id\":%d,\"format\":%u,\"width\":%d,"
        "\"height\":%d,\"stride\":%d,\"left\":%d,\"top\":%d,\"right\":%d,\"bottom\":%d,"
        "\"fnv\":\"%016" PRIx64 "\",\"path\":\"%s\"}",
        phase, id, s->format, s->w, s->h, s->stride, area.left, area.top, area.right, area.bottom,
        fnv_rows(s, area), path);
    return w == s->bytes;
}

static int dump_all(const char *phase)
{
    int ok = 1;
    for (int i = 0; i < N_SURFACES; i++) {
        if (surf[i].live) {
            ok &= dump(phase, i, rect(0, 0, surf[i].w, surf[i].h));
        }
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Steps                                                                    */

static void update_sync(int id, QXLRect area)
{
    QXLRect dirty[4];
    memset(dirty, 0, sizeof(dirty));
    spice_qxl_update_area(scene_qxl, (uint32_t)id, &area, dirty, 4, 0);
}

/* Starts an async call with a fresh cookie and waits (10 s at most) for
 * its completion; 1 when it came. */
static int run_async(void (*call)(QXLInstance *, uint64_t, void *), void *arg)
{
    static uint64_t cookie = 0x5ce7e00000000000ull;
    pthread_mutex_lock(&scene_lock);
    waiting_cookie = ++cookie;
    pthread_mutex_unlock(&scene_lock);
    call(scene_qxl, waiting_cookie, arg);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    int rc = 0;
    pthread_mutex_lock(&scene_lock);
    while (completed_cookie != waiting_cookie && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&scene_cond, &scene_lock, &until);
    }
    int done = completed_cookie == waiting_cookie;
    waiting_cookie = 0;
    pthread_mutex_unlock(&scene_lock);
    return done;
}

typedef struct {
    int id;
    QXLRect area;
} UpdateArgs;

static void call_update(QXLInstance *qxl, uint64_t cookie, void *arg)
{
    UpdateArgs *u = arg;
    spice_qxl_update_area_async(qxl, (uint32_t)u->id, &u->area, 0, cookie);
}

static void call_flush(QXLInstance *qxl, uint64_t cookie, void *arg)
{
    (void)arg;
    spice_qxl_flush_surfaces_async(qxl, cookie);
}

static int update_async(int id, QXLRect area)
{
    UpdateArgs u = {id, area};
    return run_async(call_update, &u);
}

static int start(const char *line)
{
    unsigned long long seed;
    int n;
    unsigned kinds;
    if (active || sscanf(line, "%*s %llu %d %u %2047s", &seed, &n, &kinds, dir) != 4 || n < 0) {
        return 0;
    }
    active = 1;
    rng = seed * 0x9E3779B97F4A7C15ull | 1;
    kinds_mask = kinds ? kinds : (1u << K_COUNT) - 1;
    if (!ram) {
        ram = aligned_alloc(4096, RAM_SIZE);
        if (!ram) {
            return 0;
        }
    }
    ram_used = 0;
    QXLDevMemSlot slot;
    memset(&slot, 0, sizeof(slot));
    slot.slot_group_id = SCENE_GROUP;
    slot.slot_id = SCENE_SLOT;
    slot.generation = SCENE_GEN;
    slot.virt_start = (uintptr_t)ram;
    slot.virt_end = (uintptr_t)ram + RAM_SIZE;
    slot.addr_delta = (uintptr_t)ram - GUEST_BASE;
    spice_qxl_add_memslot(scene_qxl, &slot);

    create_primary();
    create_surface(1, SPICE_SURFACE_FMT_32_xRGB, 160, 120, 0, 0, 0);
    create_surface(2, SPICE_SURFACE_FMT_32_ARGB, 120, 90, 32, 0, 1);
    create_surface(3, SPICE_SURFACE_FMT_8_A, 100, 70, 4, 0, 0);
    create_surface(4, SPICE_SURFACE_FMT_16_565, 90, 60, 4, 1, 1);
    create_surface(5, SPICE_SURFACE_FMT_32_xRGB, 64, 48, 0, 0, 1);
    create_surface(6, SPICE_SURFACE_FMT_32_xRGB, 40, 40, 0, 1, 0);
    create_surface(7, SPICE_SURFACE_FMT_8_A, 37, 23, 0, 0, 1);
    dump_all("created");
    add_ops(n);
    spice_qxl_wakeup(scene_qxl);
    return 1;
}

/* What QEMU does when it loads a VM (qxl_post_load) while it is stopped:
 * every surface dropped, the primary created again over the same memory,
 * then the off-screen surfaces' create commands replayed through
 * loadvm_commands, their memory holding what the saved VM drew. The ring
 * must be empty first: the replayed commands count as sent. */
static int loadvm(void)
{
    pthread_mutex_lock(&scene_lock);
    int drained = cmds_sent == cmds_made;
    pthread_mutex_unlock(&scene_lock);
    if (!drained) {
        return 0;
    }
    spice_qxl_destroy_surfaces(scene_qxl);
    Surf *p = &surf[0];
    QXLDevSurfaceCreate c;
    memset(&c, 0, sizeof(c));
    c.format = p->format;
    c.width = (uint32_t)p->w;
    c.height = (uint32_t)p->h;
    c.stride = p->stride;
    c.mouse_mode = 1;
    c.type = QXL_SURF_TYPE_PRIMARY;
    c.mem = gpa(p->mem);
    c.group_id = SCENE_GROUP;
    spice_qxl_create_primary_surface(scene_qxl, 0, &c);

    QXLCommandExt exts[N_SURFACES];
    uint32_t n = 0;
    for (int i = 1; i < N_SURFACES; i++) {
        Surf *s = &surf[i];
        if (!s->live) {
            continue;
        }
        QXLSurfaceCmd *cmd = galloc(sizeof(*cmd));
        cmd->surface_id = (uint32_t)i;
        cmd->type = QXL_SURFACE_CMD_CREATE;
        cmd->flags = 0;
        cmd->u.surface_create.format = s->format;
        cmd->u.surface_create.width = (uint32_t)s->w;
        cmd->u.surface_create.height = (uint32_t)s->h;
        cmd->u.surface_create.stride = s->stride;
        cmd->u.surface_create.data = gpa(s->mem);
        push(QXL_CMD_SURFACE, cmd);
        pthread_mutex_lock(&scene_lock);
        exts[n++] = cmds[cmds_sent++].ext;
        pthread_mutex_unlock(&scene_lock);
    }
    spice_qxl_loadvm_commands(scene_qxl, exts, n);
    return 1;
}

static int update(void)
{
    /* One part first: only that area is compared. */
    QXLRect part = rect(20, 10, 100, 70);
    update_sync(1, part);
    int ok = dump("partial", 1, part);
    for (int i = 0; i < N_SURFACES; i++) {
        if (!surf[i].live) {
            continue;
        }
        QXLRect whole = rect(0, 0, surf[i].w, surf[i].h);
        if (i % 2) {
            ok &= update_async(i, whole);
        } else {
            update_sync(i, whole);
        }
        ok &= dump("update", i, whole);
    }
    return ok;
}

static void counts(void)
{
    pthread_mutex_lock(&scene_lock);
    out("{\"event\":\"scene-counts\",\"made\":%u,\"sent\":%u,\"released\":%u,\"double\":%u,"
        "\"bad\":%u,\"ram\":%zu}",
        cmds_made, cmds_sent, cmds_released, cmds_double, cmds_bad, ram_used);
    pthread_mutex_unlock(&scene_lock);
    char buf[1024];
    size_t n = 0;
    for (int k = 0; k < K_COUNT; k++) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"%s\":%u", k ? "," : "", kind_names[k],
                              ops_by_kind[k]);
    }
    out("{\"event\":\"scene-ops\",%s}", buf);
}

int scene_command(QXLInstance *qxl, const char *name, const char *line)
{
    int a;
    char phase[64];
    scene_qxl = qxl;
    if (!strcmp(name, "scene_start")) {
        return start(line);
    } else if (!strcmp(name, "scene_update")) {
        return active && update();
    } else if (!strcmp(name, "scene_more")) {
        if (!active || sscanf(line, "%*s %d", &a) != 1 || a < 0) {
            return 0;
        }
        add_ops(a);
        spice_qxl_wakeup(qxl);
        update_sync(0, rect(0, 0, 1, 1));
        return 1;
    } else if (!strcmp(name, "scene_flush")) {
        /* flush_surfaces_async: every surface's guest memory up to date. */
        return active && sscanf(line, "%*s %63s", phase) == 1 && run_async(call_flush, NULL) &&
               dump_all(phase);
    } else if (!strcmp(name, "scene_loadvm")) {
        return active && loadvm();
    } else if (!strcmp(name, "scene_update_all")) {
        if (!active || sscanf(line, "%*s %63s", phase) != 1) {
            return 0;
        }
        int ok = 1;
        for (int i = 0; i < N_SURFACES; i++) {
            if (surf[i].live) {
                update_sync(i, rect(0, 0, surf[i].w, surf[i].h));
                ok &= dump(phase, i, rect(0, 0, surf[i].w, surf[i].h));
            }
        }
        return ok;
    } else if (!strcmp(name, "scene_resets")) {
        /* What QEMU calls on a device reset or when the guest is short of
         * memory: none of it may lose a surface or a command. */
        if (!active) {
            return 0;
        }
        spice_qxl_reset_image_cache(qxl);
        spice_qxl_reset_cursor(qxl);
        spice_qxl_oom(qxl);
        return 1;
    } else if (!strcmp(name, "scene_dump")) {
        return active && sscanf(line, "%*s %63s", phase) == 1 && dump_all(phase);
    } else if (!strcmp(name, "scene_end")) {
        if (!active) {
            return 0;
        }
        for (int i = 1; i < N_SURFACES; i++) {
            if (surf[i].live) {
                destroy_surface(i);
            }
        }
        spice_qxl_wakeup(qxl);
        update_sync(0, rect(0, 0, 1, 1));
        spice_qxl_destroy_primary_surface(qxl, 0);
        surf[0].live = 0;
        counts();
        return 1;
    }
    return -1;
}
