"""Running a service under gunicorn: the shared config module and the application that drains."""
