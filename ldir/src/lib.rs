//! ldir
