//! staffpass-node library.
