// libnibble.so is assembled from the component archives; this file gives it a source.
