"""AddTags, ListTags and DeleteTags on every taggable resource."""
