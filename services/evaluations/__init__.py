"""好差评: the applicant's rating of a finished case, the rectification a bad one opens for the
handling point's supervisor, the return visit, one re-rating, and the figures per point, clerk
and region."""
