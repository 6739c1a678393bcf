"""Pure forecasting library: station input (`station/`), windows and features, the model
families (`models/`), fitting the candidates at a cut-off, scoring and the promotion gate
(`scoring/`), and one forecast issue. Never Prefect, never the database."""
