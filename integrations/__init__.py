"""Service back ends behind Protocols (permits, complaints): demo, HTTP and Open311 implementations."""
