"""Adapters for the frameworks people already run: the OpenAI Agents SDK (``agents``),
LangGraph (``langgraph``) and LangChain (``langchain``), and importers from their stores
(``importers``). Each adapter is an optional extra and is imported only when used.
"""
