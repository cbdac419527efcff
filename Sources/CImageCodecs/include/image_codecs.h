#ifndef SWIFTCNN_IMAGE_CODECS_H
#define SWIFTCNN_IMAGE_CODECS_H
// C wrappers around libpng / libjpeg-turbo (their error handling uses setjmp, which Swift cannot).
// Placeholder: the Datasets work fills this in.
int swiftcnn_codecs_version(void);
#endif
