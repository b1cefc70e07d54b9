//! Model zoo (in progress).
