//! Memory for tracking: the page source, the slab allocator and the xmalloc baseline.
