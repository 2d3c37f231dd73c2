"""The web app: upload documents, chat with cited sources, and the /ingest, /search, /ask API.

Gradio is imported only in this package. One job per module:

- `server`: `create_demo()` builds the app from the settings without launching it;
  `launch(demo)` serves it (127.0.0.1:7860 unless GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say
  otherwise); `main()` does both.
- `blocks`: `build_app(kb, workspace, admin)` puts layout, handlers and API together.
- `layout`: the components; `library`: the Upload tab's handlers (list, upload, delete);
  `chat_tab`: the Chat tab's (ask, stop, regenerate, edit, feedback); `history`: the saved
  conversations; `kb_panel`: the knowledge-base picker and its tools; `accounts_tab`: accounts,
  for admins; `mcp_login`: MCP behind the login, each tool call checked against a role.
- `chat`: a session's replies and one question streamed through `rag.answer.Answer`.
- `render` and `tables`: pure rendering (sources cards, chat messages, tables, LLM card).
- `api`: the public endpoints and MCP tools; `services`: what handlers and API call.
- `static/`: the page's CSS and script.
"""

from rag.ui.blocks import build_app
from rag.ui.cards import sources_html
from rag.ui.chat import ChatSession, Reply, chat_stream
from rag.ui.render import hits_markdown, link_citations
from rag.ui.server import auth_from, create_demo, launch, main
from rag.ui.services import Services

__all__ = ["ChatSession", "Reply", "Services", "auth_from", "build_app", "chat_stream",
           "create_demo", "hits_markdown", "launch", "link_citations", "main", "sources_html"]
