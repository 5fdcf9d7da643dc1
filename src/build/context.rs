//! Build contexts: which files of a context an image sees, their digest, and the tar.
