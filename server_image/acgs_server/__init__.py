"""acgs_server"""
