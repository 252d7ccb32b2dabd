"""gunicorn settings for examples/chat.py: one worker per process (Socket.IO
needs sticky sessions; scale with more processes behind a sticky balancer).

    gunicorn -c examples/gunicorn.conf.py -k gevent --chdir examples chat:app
    gunicorn -c examples/gunicorn.conf.py -k eventlet --chdir examples chat:app
        # -k eventlet needs gunicorn < 26 (26 removed the eventlet worker)
"""
import os

bind = os.environ.get('BIND', '127.0.0.1:5000')
workers = 1
worker_connections = 1000
