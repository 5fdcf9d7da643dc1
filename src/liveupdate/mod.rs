//! live_update: what a set of changed files means for a running container.
