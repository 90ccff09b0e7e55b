"""Regional figures (一网协同): case counts, working days and 好差评 ratings rolled up over every
region subtree and every service point, kept in rollup tables by a periodic job so that a
province's figures are a small indexed lookup instead of a scan of its cases."""
