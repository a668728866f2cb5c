module zkscale.local/pause

go 1.24
