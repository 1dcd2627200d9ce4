//! hbeat
