"""Python gql (requests transport, upload_files=True) against examples/graphql: uploads a
cover with attachCover, reads it back, and records what the server answers to a cover over
the limit and to a client without a preflight header. Prints one JSON object."""

import io
import json
import sys

from gql import Client, FileVar, gql
from gql.transport.requests import RequestsHTTPTransport

url = sys.argv[1]
out = {}


def client(headers):
    transport = RequestsHTTPTransport(url=url, headers=headers, retries=0)
    return Client(transport=transport, fetch_schema_from_transport=False)


def attempt(session, request, **kwargs):
    try:
        return {"ok": session.execute(request, **kwargs)}
    except Exception as e:  # the server's refusal, as the client reports it
        return {"error": f"{type(e).__name__}: {e}"}


mutation = gql(
    """mutation($file: Upload!) {
         attachCover(bookId: "2", file: $file) {
           id title cover { filename contentType size preview }
         }
       }"""
)
content = b"The Dispossessed: an ambiguous utopia\n" * 100

with client({"Apollo-Require-Preflight": "true"}) as session:
    mutation.variable_values = {
        "file": FileVar(io.BytesIO(content), filename="cover.txt", content_type="text/plain")
    }
    out["upload"] = attempt(session, mutation, upload_files=True)
    out["query"] = attempt(session, gql('{ book(id: "2") { cover { filename size } } }'))
    mutation.variable_values = {
        "file": FileVar(
            io.BytesIO(b"x" * (256 * 1024 + 1)),
            filename="big.bin",
            content_type="application/octet-stream",
        )
    }
    out["too_large"] = attempt(session, mutation, upload_files=True)

with client({}) as session:
    mutation.variable_values = {
        "file": FileVar(io.BytesIO(b"csrf"), filename="x.txt", content_type="text/plain")
    }
    out["no_preflight"] = attempt(session, mutation, upload_files=True)

print(json.dumps(out))
