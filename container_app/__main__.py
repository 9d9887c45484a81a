"""`python -m container_app`."""

from container_app.cli.main import main_entry

if __name__ == "__main__":
    main_entry()
