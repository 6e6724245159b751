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

/* Everything written after setjmp lives here, on the heap, so none of it is
 * an automatic variable whose value longjmp leaves indeterminate. */
struct job {
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr err;
    jmp_buf on_error;
    unsigned char *buf;
    unsigned long len;
};

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

/* Encodes width x height pixels (rows `stride` bytes apart) at `quality`
 * (1..100, 4:2:0 as libjpeg's default). On success returns 0 and a buffer
 * from malloc in *out (its length in *out_len) that the caller frees with
 * spice_capi_jpeg_free; on failure returns -1 and leaves *out NULL. */
int spice_capi_jpeg_encode_bgrx(const unsigned char *pixels, unsigned int width, unsigned int height,
                                size_t stride, int quality, unsigned char **out, unsigned long *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (width == 0 || height == 0 || width > 65535 || height > 65535 || stride < (size_t)width * 4) {
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
    if (setjmp(job->on_error)) {
        jpeg_destroy_compress(&job->cinfo);
        free(job->buf);
        free(job);
        return -1;
    }
    jpeg_create_compress(&job->cinfo);
    jpeg_mem_dest(&job->cinfo, &job->buf, &job->len);
    job->cinfo.image_width = width;
    job->cinfo.image_height = height;
    job->cinfo.input_components = 4;
    job->cinfo.in_color_space = JCS_EXT_BGRX;
    jpeg_set_defaults(&job->cinfo);
    jpeg_set_quality(&job->cinfo, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    jpeg_start_compress(&job->cinfo, TRUE);
    while (job->cinfo.next_scanline < job->cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)job->cinfo.next_scanline * stride);
        jpeg_write_scanlines(&job->cinfo, &row, 1);
    }
    jpeg_finish_compress(&job->cinfo);
    jpeg_destroy_compress(&job->cinfo);
    *out = job->buf;
    *out_len = job->len;
    free(job);
    return 0;
}

void spice_capi_jpeg_free(unsigned char *buf)
{
    free(buf);
}
