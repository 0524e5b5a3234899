//! Volley runtime.
