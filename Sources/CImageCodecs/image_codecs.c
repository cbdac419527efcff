#include "image_codecs.h"
int swiftcnn_codecs_version(void) { return 1; }
