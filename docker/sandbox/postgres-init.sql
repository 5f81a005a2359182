-- Local sandbox only (docker/compose.yml): the database pbiops's store uses
-- (PBIOPS_ODBC=Driver={PostgreSQL Unicode};Server=postgres;…;Database=pbiops;Uid=pbiops;Pwd=pbiops;).
-- PostgreSQL's image runs this once, when its data volume is empty; pbiops creates its own
-- tables (pbiops_*) on first use.
CREATE ROLE pbiops LOGIN PASSWORD 'pbiops';
CREATE DATABASE pbiops OWNER pbiops;
