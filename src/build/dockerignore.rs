//! Docker's `.dockerignore` matcher (moby patternmatcher v0.6.1 semantics).
