#include <stdio.h>
#include <jpeglib.h>
// Writes a 12x10 progressive (arg 1), a 16x8 grayscale restart-interval (arg 2) or a 16x8 grayscale
// progressive JPEG with one full DC scan and one full AC scan (arg 3, the scan-bomb test's seed) to stdout.
int main(int argc, char **argv) {
    int mode = argv[1][0] - '0';
    struct jpeg_compress_struct c; struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e); jpeg_create_compress(&c); jpeg_stdio_dest(&c, stdout);
    c.image_width = mode == 1 ? 12 : 16; c.image_height = mode == 1 ? 10 : 8;
    c.input_components = mode == 1 ? 3 : 1; c.in_color_space = mode == 1 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c); jpeg_set_quality(&c, 75, TRUE);
    static const jpeg_scan_info two_scans[2] = {{1, {0}, 0, 0, 0, 0}, {1, {0}, 1, 63, 0, 0}};
    if (mode == 1) jpeg_simple_progression(&c);
    else if (mode == 3) { c.scan_info = two_scans; c.num_scans = 2; }
    else c.restart_interval = 1;
    jpeg_start_compress(&c, TRUE);
    unsigned char row[16 * 3];
    while (c.next_scanline < c.image_height) {
        for (unsigned i = 0; i < sizeof row; i++) row[i] = (unsigned char)(i * 7 + c.next_scanline * 13);
        JSAMPROW r = row; jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c); jpeg_destroy_compress(&c); return 0;
}
