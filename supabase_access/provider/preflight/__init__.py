"""The checks of AccessPreflight (provider/resources/access_preflight.py), one concern each: the model's
tables and roles (`tables`), what the Data API exposes beyond the model (`exposed`), each table's policies
(`policies`) and the widening probe of the extra policies (`widening`)."""
