//! A conformance suite every DeliveryStore runs (stub).
