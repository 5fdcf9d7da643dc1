//! Image builds: build contexts (`.dockerignore`, `only`, `ignore`), `docker_build` through the
//! Docker engine and `custom_build` commands, in image-dependency order.

pub mod context;
pub mod dockerignore;
