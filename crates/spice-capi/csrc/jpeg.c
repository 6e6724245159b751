/* SPDX-License-Identifier: MIT OR Apache-2.0
 *
 * One JPEG frame from B, G, R, x rows with the system's libjpeg(-turbo),
 * for MJPEG video streams (spice-capi/src/jpeg.rs). C, because libjpeg's
 * compress struct is a large version-specific layout and its errors unwind
 * with longjmp: both stay on this side of the FFI boundary.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

/* Where the stream goes: the caller's buffer while it fits, then a buffer
 * of our own that doubles as it fills (libjpeg's jpeg_mem_dest would lose
 * track of its own buffer if an error unwound past it). */
struct dest {
    struct jpeg_destination_mgr pub;
    unsigned char *buf;
    size_t cap;
    int owned;
};

/* Everything written after setjmp lives here, on the heap, so none of it is
 * an automatic variable whose value longjmp leaves indeterminate. */
struct job {
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr err;
    struct dest dest;
    jmp_buf on_error;
};

static void dest_init(j_compress_ptr cinfo)
{
    (void)cinfo;
}

static boolean dest_grow(j_compress_ptr cinfo)
{
    struct dest *dest = (struct dest *)cinfo->dest;
    size_t cap = dest->cap < 4096 ? 4096 : dest->cap * 2;
    unsigned char *bigger = malloc(cap);
    if (!bigger) {
        ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
    }
    if (dest->cap) {
        memcpy(bigger, dest->buf, dest->cap);
    }
    if (dest->owned) {
        free(dest->buf);
    }
    dest->pub.next_output_byte = bigger + dest->cap;
    dest->pub.free_in_buffer = cap - dest->cap;
    dest->buf = bigger;
    dest->cap = cap;
    dest->owned = 1;
    return TRUE;
}

static void dest_term(j_compress_ptr cinfo)
{
    (void)cinfo;
}

static void fail(j_common_ptr cinfo)
{
    struct job *job = (struct job *)cinfo->client_data;
    longjmp(job->on_error, 1);
}

/* libjpeg's warnings would go to stderr; a frame is either encoded or not. */
static void quiet(j_common_ptr cinfo)
{
    (void)cinfo;
}

/* Encodes `height` rows of `width` B, G, R, x pixels, row i starting at
 * rows[i], at `quality` (1..100, 4:2:0 as libjpeg's default). The stream is
 * written into `buf` (`cap` bytes, may be NULL) while it fits, else into a
 * buffer of our own. On success returns 0 with the stream in *out
 * (`buf`, or a buffer from malloc that the caller frees with
 * spice_capi_jpeg_free) and its length in *out_len; on failure returns -1
 * and leaves *out NULL. libjpeg reads the rows as it encodes them: nothing
 * is copied first. */
int spice_capi_jpeg_encode_rows(const unsigned char *const *rows, unsigned int width, unsigned int height,
                                int quality, unsigned char *buf, unsigned long cap, unsigned char **out,
                                unsigned long *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (width == 0 || height == 0 || width > 65535 || height > 65535) {
        return -1;
    }
    struct job *const job = calloc(1, sizeof(*job));
    if (!job) {
        return -1;
    }
    job->cinfo.err = jpeg_std_error(&job->err);
    job->err.error_exit = fail;
    job->err.output_message = quiet;
    job->cinfo.client_data = job;
    job->dest.buf = buf;
    job->dest.cap = buf ? cap : 0;
    job->dest.pub.init_destination = dest_init;
    job->dest.pub.empty_output_buffer = dest_grow;
    job->dest.pub.term_destination = dest_term;
    job->dest.pub.next_output_byte = job->dest.buf;
    job->dest.pub.free_in_buffer = job->dest.cap;
    if (setjmp(job->on_error)) {
        jpeg_destroy_compress(&job->cinfo);
        if (job->dest.owned) {
            free(job->dest.buf);
        }
        free(job);
        return -1;
    }
    jpeg_create_compress(&job->cinfo);
    job->cinfo.dest = &job->dest.pub;
    job->cinfo.image_width = width;
    job->cinfo.image_height = height;
    job->cinfo.input_components = 4;
    job->cinfo.in_color_space = JCS_EXT_BGRX;
    jpeg_set_defaults(&job->cinfo);
    jpeg_set_quality(&job->cinfo, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    jpeg_start_compress(&job->cinfo, TRUE);
    while (job->cinfo.next_scanline < job->cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)rows[job->cinfo.next_scanline];
        jpeg_write_scanlines(&job->cinfo, &row, 1);
    }
    jpeg_finish_compress(&job->cinfo);
    jpeg_destroy_compress(&job->cinfo);
    *out = job->dest.buf;
    *out_len = (unsigned long)(job->dest.cap - job->dest.pub.free_in_buffer);
    free(job);
    return 0;
}

void spice_capi_jpeg_free(unsigned char *buf)
{
    free(buf);
}
