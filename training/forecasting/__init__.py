"""Demand forecasting: the weekly panel, the protocol metrics, the protocol evaluation."""
