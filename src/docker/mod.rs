//! The Docker engine connection.
