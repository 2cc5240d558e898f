"""ward.dashboard: pure view logic and data assembly for the Streamlit dashboard (dashboard/app.py)."""
