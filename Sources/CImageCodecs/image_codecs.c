// libpng / libjpeg-turbo decode and encode wrappers. See include/image_codecs.h.
#include "image_codecs.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

int swiftcnn_codecs_version(void) { return 2; }

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err == NULL || errlen == 0) return;
    snprintf(err, errlen, "%s", msg);
}

void swiftcnn_image_free(swiftcnn_image *img) {
    if (img == NULL) return;
    free(img->pixels);
    img->pixels = NULL;
}

static int check_size(long long w, long long h, long long max_pixels, char *err, size_t errlen) {
    if (w <= 0 || h <= 0) {
        set_err(err, errlen, "image has zero width or height");
        return 1;
    }
    if (max_pixels > 0 && w * h > max_pixels) {
        char buf[160];
        snprintf(buf, sizeof buf, "image is %lldx%lld pixels, more than the limit of %lld pixels",
                 w, h, max_pixels);
        set_err(err, errlen, buf);
        return 1;
    }
    return 0;
}

// ---------------------------------------------------------------- PNG

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t pos;
    char message[256];
    // Owned allocations, freed on every exit path (including longjmp).
    unsigned char *pixels;
    png_bytep *rows;
} png_ctx;

static void png_read_mem(png_structp png, png_bytep dst, png_size_t n) {
    png_ctx *c = (png_ctx *)png_get_io_ptr(png);
    if (n > c->size - c->pos) {
        snprintf(c->message, sizeof c->message,
                 "file is truncated: needed %zu more bytes at byte offset %zu of %zu",
                 (size_t)n, c->pos, c->size);
        png_longjmp(png, 1);
    }
    memcpy(dst, c->data + c->pos, n);
    c->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = (png_ctx *)png_get_error_ptr(png);
    if (c->message[0] == 0) snprintf(c->message, sizeof c->message, "libpng: %s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

// libpng allocates (and zeroes) an ancillary chunk's declared length before reading it, with its
// size check only a warning: a 2 KB file whose zTXt declares 1.2 GB made it touch 1.2 GB (found by
// the fuzzer). The whole file is in memory, so a chunk longer than what is left is refused first.
static int png_check_chunk_lengths(const unsigned char *data, size_t size, char *err, size_t errlen) {
    size_t at = 8;
    while (size - at >= 8) {
        size_t len = (size_t)data[at] << 24 | (size_t)data[at + 1] << 16 | (size_t)data[at + 2] << 8 | data[at + 3];
        if (len > size - at - 8) {
            char buf[200];
            snprintf(buf, sizeof buf, "file is truncated or corrupt: chunk '%.4s' at byte offset %zu declares %zu bytes, "
                     "but only %zu are left", (const char *)data + at + 4, at, len, size - at - 8);
            set_err(err, errlen, buf);
            return 1;
        }
        if (memcmp(data + at + 4, "IEND", 4) == 0) break;
        size_t next = at + 8 + len;  // <= size, checked above; then the CRC, if it is there
        at = size - next >= 4 ? next + 4 : size;
    }
    return 0;
}

int swiftcnn_decode_png(const unsigned char *data, size_t size, long long max_pixels,
                        swiftcnn_image *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        set_err(err, errlen, "not a PNG file (bad signature)");
        return 1;
    }
    if (png_check_chunk_lengths(data, size, err, errlen)) return 1;
    // The context is on the heap and its pointer never changes after setjmp, so its fields
    // (written between setjmp and a longjmp) stay valid on the error path.
    png_ctx *ctx = (png_ctx *)calloc(1, sizeof(png_ctx));
    if (ctx == NULL) { set_err(err, errlen, "out of memory"); return 1; }
    ctx->data = data;
    ctx->size = size;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, png_on_error, png_on_warning);
    if (png == NULL) { free(ctx); set_err(err, errlen, "libpng: out of memory"); return 1; }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        free(ctx);
        set_err(err, errlen, "libpng: out of memory");
        return 1;
    }
    // Everything that may need freeing after a longjmp lives in ctx (not in locals).
    if (setjmp(png_jmpbuf(png))) {
        set_err(err, errlen, ctx->message[0] ? ctx->message : "libpng: decode failed");
        free(ctx->pixels);
        free(ctx->rows);
        png_destroy_read_struct(&png, &info, NULL);
        free(ctx);
        return 1;
    }
    png_set_read_fn(png, ctx, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info);
    png_uint_32 h = png_get_image_height(png, info);
    if (check_size(w, h, max_pixels, ctx->message, sizeof ctx->message)) png_longjmp(png, 1);

    int color_type = png_get_color_type(png, info);
    int bit_depth = png_get_bit_depth(png, info);
    if (bit_depth == 16) png_set_strip_16(png);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    if (channels != 1 && channels != 3) {
        snprintf(ctx->message, sizeof ctx->message, "unsupported PNG layout: %d channels after conversion", channels);
        png_longjmp(png, 1);
    }
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * (size_t)channels) {
        snprintf(ctx->message, sizeof ctx->message, "unsupported PNG layout: %zu bytes per row for width %u", rowbytes, w);
        png_longjmp(png, 1);
    }
    ctx->pixels = (unsigned char *)malloc(rowbytes * h);
    ctx->rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
    if (ctx->pixels == NULL || ctx->rows == NULL) {
        snprintf(ctx->message, sizeof ctx->message, "out of memory for a %ux%u image", w, h);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) ctx->rows[y] = ctx->pixels + (size_t)y * rowbytes;
    png_read_image(png, ctx->rows);
    png_read_end(png, NULL);

    out->pixels = ctx->pixels;
    out->width = (int)w;
    out->height = (int)h;
    out->channels = channels;
    free(ctx->rows);
    png_destroy_read_struct(&png, &info, NULL);
    free(ctx);
    return 0;
}

typedef struct {
    char message[256];
    FILE *file;
    png_bytep *rows;
} png_write_ctx;

static void png_on_write_error(png_structp png, png_const_charp msg) {
    png_write_ctx *c = (png_write_ctx *)png_get_error_ptr(png);
    snprintf(c->message, sizeof c->message, "libpng: %s", msg);
    png_longjmp(png, 1);
}

int swiftcnn_encode_png(const char *path, const unsigned char *pixels, int width, int height,
                        int channels, char *err, size_t errlen) {
    int color;
    switch (channels) {
    case 1: color = PNG_COLOR_TYPE_GRAY; break;
    case 3: color = PNG_COLOR_TYPE_RGB; break;
    case 4: color = PNG_COLOR_TYPE_RGB_ALPHA; break;
    default: set_err(err, errlen, "PNG writer: channels must be 1, 3 or 4"); return 1;
    }
    if (width <= 0 || height <= 0) { set_err(err, errlen, "PNG writer: empty image"); return 1; }
    png_write_ctx *ctx = (png_write_ctx *)calloc(1, sizeof(png_write_ctx));
    if (ctx == NULL) { set_err(err, errlen, "out of memory"); return 1; }
    ctx->file = fopen(path, "wb");
    if (ctx->file == NULL) { free(ctx); set_err(err, errlen, "cannot open the file for writing"); return 1; }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, png_on_write_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (png == NULL || info == NULL) {
        png_destroy_write_struct(&png, NULL);
        fclose(ctx->file);
        free(ctx);
        set_err(err, errlen, "libpng: out of memory");
        return 1;
    }
    if (setjmp(png_jmpbuf(png))) {
        set_err(err, errlen, ctx->message);
        free(ctx->rows);
        png_destroy_write_struct(&png, &info);
        fclose(ctx->file);
        free(ctx);
        return 1;
    }
    png_init_io(png, ctx->file);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    ctx->rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)height);
    if (ctx->rows == NULL) { snprintf(ctx->message, sizeof ctx->message, "out of memory"); png_longjmp(png, 1); }
    for (int y = 0; y < height; y++) ctx->rows[y] = (png_bytep)(pixels + (size_t)y * (size_t)width * (size_t)channels);
    png_write_image(png, ctx->rows);
    png_write_end(png, NULL);
    free(ctx->rows);
    png_destroy_write_struct(&png, &info);
    int closed = fclose(ctx->file);
    free(ctx);
    if (closed != 0) { set_err(err, errlen, "write failed (disk full?)"); return 1; }
    return 0;
}

// ---------------------------------------------------------------- JPEG

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX + 64];
} jpeg_err_ctx;

static void jpeg_on_error_exit(j_common_ptr cinfo) {
    jpeg_err_ctx *e = (jpeg_err_ctx *)cinfo->err;
    char buf[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buf);
    snprintf(e->message, sizeof e->message, "libjpeg: %s", buf);
    longjmp(e->jump, 1);
}

// Warnings that mean the decoded pixels are not the file's pixels become errors.
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level != -1) return;  // trace messages
    int code = cinfo->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_BOGUS_PROGRESSION ||
        code == JWRN_MUST_RESYNC || code == JWRN_NOT_SEQUENTIAL) {
        jpeg_err_ctx *e = (jpeg_err_ctx *)cinfo->err;
        char buf[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, buf);
        snprintf(e->message, sizeof e->message, "libjpeg: %s (file truncated or corrupt)", buf);
        longjmp(e->jump, 1);
    }
}

// A progressive JPEG may repeat a scan, and each scan passes over the whole image: a small file of
// repeated scans would take hours. libjpeg calls this monitor while it reads; stop past this many
// scans (libjpeg-turbo's djpeg -maxscans and TurboJPEG use the same check; real files have ~10).
#define SWIFTCNN_JPEG_MAX_SCANS 500
static void jpeg_on_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor || ((j_decompress_ptr)cinfo)->input_scan_number <= SWIFTCNN_JPEG_MAX_SCANS) return;
    jpeg_err_ctx *e = (jpeg_err_ctx *)cinfo->err;
    snprintf(e->message, sizeof e->message, "JPEG has more than %d scans (corrupt or hostile)", SWIFTCNN_JPEG_MAX_SCANS);
    longjmp(e->jump, 1);
}

int swiftcnn_decode_jpeg(const unsigned char *data, size_t size, long long max_pixels,
                         swiftcnn_image *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) {
        set_err(err, errlen, "not a JPEG file (bad signature)");
        return 1;
    }
    struct jpeg_decompress_struct cinfo;
    jpeg_err_ctx jerr;
    memset(&jerr, 0, sizeof jerr);
    // `pixels` and `row4` are written after setjmp and read after longjmp: they must be volatile.
    unsigned char *volatile pixels = NULL;
    unsigned char *volatile row4 = NULL;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_on_error_exit;
    jerr.pub.emit_message = jpeg_on_message;
    if (setjmp(jerr.jump)) {
        set_err(err, errlen, jerr.message[0] ? jerr.message : "libjpeg: decode failed");
        free(pixels);
        free(row4);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    struct jpeg_progress_mgr progress = {.progress_monitor = jpeg_on_progress};
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, (unsigned char *)data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_GRAYSCALE) {
        cinfo.out_color_space = JCS_GRAYSCALE;
    } else if (cinfo.jpeg_color_space == JCS_YCbCr || cinfo.jpeg_color_space == JCS_RGB) {
        cinfo.out_color_space = JCS_RGB;
    } else if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        // Decoded as CMYK and converted to RGB below.
        cinfo.out_color_space = JCS_CMYK;
    } else {
        snprintf(jerr.message, sizeof jerr.message,
                 "unsupported JPEG colour space %d; convert the image to RGB", (int)cinfo.jpeg_color_space);
        longjmp(jerr.jump, 1);
    }
    if (check_size(cinfo.image_width, cinfo.image_height, max_pixels, jerr.message, sizeof jerr.message))
        longjmp(jerr.jump, 1);
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, c = cinfo.output_components;
    if (cinfo.out_color_space == JCS_CMYK && c == 4) {
        // CMYK to RGB as PIL's convert("RGB"): R = (255 - K) - (255 - K) * C / 255, likewise G
        // from M and B from Y. Files with an Adobe marker (Photoshop's) store inverted CMYK.
        int inverted = cinfo.saw_Adobe_marker;
        size_t stride3 = (size_t)w * 3;
        pixels = (unsigned char *)malloc(stride3 * (size_t)h);
        row4 = (unsigned char *)malloc((size_t)w * 4);
        if (pixels == NULL || row4 == NULL) {
            snprintf(jerr.message, sizeof jerr.message, "out of memory for a %dx%d image", w, h);
            longjmp(jerr.jump, 1);
        }
        while (cinfo.output_scanline < cinfo.output_height) {
            unsigned char *dst = pixels + (size_t)cinfo.output_scanline * stride3;
            JSAMPROW row = row4;
            jpeg_read_scanlines(&cinfo, &row, 1);
            for (int x = 0; x < w; x++) {
                const unsigned char *q = row4 + 4 * (size_t)x;
                int k = inverted ? 255 - q[3] : q[3];
                int nk = 255 - k;
                for (int ch = 0; ch < 3; ch++) {
                    int v = inverted ? 255 - q[ch] : q[ch];
                    int t = v * nk + 128;
                    dst[3 * x + ch] = (unsigned char)(nk - (((t >> 8) + t) >> 8));
                }
            }
        }
        free(row4);
        row4 = NULL;
        jpeg_finish_decompress(&cinfo);
        jpeg_destroy_decompress(&cinfo);
        out->pixels = pixels;
        out->width = w;
        out->height = h;
        out->channels = 3;
        return 0;
    }
    if (c != 1 && c != 3) {
        snprintf(jerr.message, sizeof jerr.message, "unsupported JPEG layout: %d components", c);
        longjmp(jerr.jump, 1);
    }
    size_t stride = (size_t)w * (size_t)c;
    pixels = (unsigned char *)malloc(stride * (size_t)h);
    if (pixels == NULL) {
        snprintf(jerr.message, sizeof jerr.message, "out of memory for a %dx%d image", w, h);
        longjmp(jerr.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    out->pixels = pixels;
    out->width = w;
    out->height = h;
    out->channels = c;
    return 0;
}

int swiftcnn_encode_jpeg(const char *path, const unsigned char *pixels, int width, int height,
                         int channels, int quality, char *err, size_t errlen) {
    if (channels != 1 && channels != 3 && channels != 4) { set_err(err, errlen, "JPEG writer: channels must be 1, 3 or 4 (CMYK)"); return 1; }
    if (width <= 0 || height <= 0) { set_err(err, errlen, "JPEG writer: empty image"); return 1; }
    FILE *volatile file = fopen(path, "wb");
    if (file == NULL) { set_err(err, errlen, "cannot open the file for writing"); return 1; }
    struct jpeg_compress_struct cinfo;
    jpeg_err_ctx jerr;
    memset(&jerr, 0, sizeof jerr);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_on_error_exit;
    if (setjmp(jerr.jump)) {
        set_err(err, errlen, jerr.message);
        jpeg_destroy_compress(&cinfo);
        fclose(file);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, file);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    // 4 channels: CMYK, stored as given with an Adobe marker (Photoshop's inverted convention).
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)width * (size_t)channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * stride);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    if (fclose(file) != 0) { set_err(err, errlen, "write failed (disk full?)"); return 1; }
    return 0;
}
