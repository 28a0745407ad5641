//! The mio event loop that owns the core and every peer connection. (Filled in by the
//! net/runtime work.)
