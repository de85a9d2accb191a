//! Built-in worker functions, registered under `papy.`.

mod passers;
