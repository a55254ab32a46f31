"""Step 05 (Pre-LN vs Post-LN), its checks in one place: `checklist`."""
