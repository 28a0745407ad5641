//! The tiny_http front. (Filled in by the http work.)
