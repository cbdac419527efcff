#ifndef SWIFTCNN_IMAGE_CODECS_H
#define SWIFTCNN_IMAGE_CODECS_H
// C wrappers around libpng and libjpeg-turbo. Their error handling uses setjmp/longjmp, which
// Swift cannot express, so every libpng/libjpeg call stays in image_codecs.c and errors come
// back as a nonzero return code plus a message.
//
// Decoded pixels are 8-bit, interleaved (H, W, C) row-major, C = 1 (gray) or 3 (RGB):
// 16-bit samples are reduced to 8 bits, palettes expanded, sub-byte gray expanded, alpha dropped
// (as PIL's convert("RGB") does). Colour conversion beyond that is the caller's business.
#include <stddef.h>

typedef struct {
    unsigned char *pixels;  // height * width * channels bytes, malloc'd; free with swiftcnn_image_free
    int width;
    int height;
    int channels;           // 1 or 3
} swiftcnn_image;

/// Decodes a PNG held in memory. Refuses images with more than `max_pixels` pixels before
/// allocating (a corrupt or hostile header cannot make us allocate gigabytes).
/// Returns 0 on success; otherwise writes a message into `err` (always NUL-terminated).
int swiftcnn_decode_png(const unsigned char *data, size_t size, long long max_pixels,
                        swiftcnn_image *out, char *err, size_t errlen);

/// Decodes a baseline or progressive JPEG held in memory (gray, YCbCr/RGB, or CMYK/YCCK converted
/// to RGB as PIL's convert("RGB") does; Adobe-marked files hold inverted CMYK).
/// A truncated or corrupt entropy-coded segment is an error, not a silently gray-filled image.
int swiftcnn_decode_jpeg(const unsigned char *data, size_t size, long long max_pixels,
                         swiftcnn_image *out, char *err, size_t errlen);

void swiftcnn_image_free(swiftcnn_image *img);

/// Writes interleaved 8-bit pixels (channels 1, 3 or 4) as a PNG file. Returns 0 on success.
int swiftcnn_encode_png(const char *path, const unsigned char *pixels, int width, int height,
                        int channels, char *err, size_t errlen);

/// Writes interleaved 8-bit pixels (channels 1 or 3, or 4: CMYK written as given with an Adobe
/// marker, i.e. in Photoshop's inverted convention) as a baseline JPEG of `quality` (1...100).
int swiftcnn_encode_jpeg(const char *path, const unsigned char *pixels, int width, int height,
                         int channels, int quality, char *err, size_t errlen);

int swiftcnn_codecs_version(void);
#endif
