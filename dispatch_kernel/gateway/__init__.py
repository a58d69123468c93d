"""The API gateway: HTTP requests on the routes of APIs become runs of their functions.

    routes.py     path templates, the route table, where a route answers (standard library only)
    requests.py   a request -> the function's input and ctx.http
    responses.py  a finished run -> the HTTP answer
    cors.py       preflights and CORS headers, per API
    auth.py       the credential check of `auth: token` APIs
    service.py    Gateway: one request from route to run to answer, whatever serves it
    handler.py    the tornado handler the Jupyter extension and the standalone gateway share
    standalone.py `dispatch gateway --port P`: a process of its own over the same store

Importing this package imports nothing: the clients use routes.py without tornado.
"""
