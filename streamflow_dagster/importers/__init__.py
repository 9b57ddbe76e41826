"""Optional importers: public data sets mapped onto StreamFlow's landing files (not the product)."""
