//! fakeip
