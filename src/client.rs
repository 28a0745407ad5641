//! A small blocking client of ZooWeeper's HTTP API. (Filled in by the http work.)
