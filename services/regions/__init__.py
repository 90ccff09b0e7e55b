"""Administrative regions: the 12-digit statistical division code tree (统计用区划代码).

- `codes`: pure helpers on the digits (levels, structural ancestor candidates, subtree prefix)
- `models.Region`: the `regions` table
- `repository`: read-only queries (get, ancestors, is_within, children, count_active)
- `importer.import_regions`: validated bulk upsert of a `code,name,level,parent_code` file
"""
