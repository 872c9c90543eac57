"""The study's domain, numpy only: design, data contract, simulation, overlap views, jobs."""
