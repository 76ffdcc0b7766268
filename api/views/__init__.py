"""Response objects: ORM rows turned into CloudStack's response dicts.

One module per resource family; each view is a function ``(session, row) -> dict``
using CloudStack's lowercase field names, paired with a ``*_FIELDS`` dict
(name -> description) that commands pass as ``response_fields`` for listApis.
Fields that are None are left out, as CloudStack leaves out null fields.
"""
