"""Example expfam plugins: ``geometric`` (family), ``xy_scaled`` (block), ``l2`` (loss term), ``stripes`` (dataset)."""
